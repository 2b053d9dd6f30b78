/*
 * netbuf_test.c -- backend code that uses netbuf through include/netbuf.h,
 * for `make demo` and `make test`.
 *
 * On a standby it is the seed's caller: load_file("libnetbuf"), connect,
 * send, recv.  On the primary, loaded through session_preload_libraries, it
 * is a module that adds its own op codes to netbuf.serve().
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "libpq/libpq.h"
#include "libpq/pqformat.h"
#include "port/pg_bswap.h"
#include "miscadmin.h"
#include "parser/analyze.h"
#include "storage/latch.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "netbuf.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* ---- primary side: handlers for the test op codes ---- */

/* 'R': the payload reversed, after the op code. */
static void
handle_reverse(const char *request, int nbytes, StringInfo reply)
{
	appendStringInfoChar(reply, 'R');
	for (int i = nbytes - 1; i >= 1; i--)
		appendStringInfoChar(reply, request[i]);
}

/*
 * 'S' + int32 milliseconds: sleep (interruptibly), then reply "S".
 * (netbuf sends the replies queued before a handler that runs in a
 * transaction, so a pipeline's earlier replies do not wait for the sleep.)
 */
static void
handle_sleep(const char *request, int nbytes, StringInfo reply)
{
	StringInfoData msg = {unconstify(char *, request), nbytes, nbytes, 1};
	int			ms = pq_getmsgint(&msg, 4);
	TimestampTz end = GetCurrentTimestamp() + (TimestampTz) ms * 1000;

	while (GetCurrentTimestamp() < end)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	appendStringInfoChar(reply, 'S');
}

/* 'z': an empty reply, which netbuf must refuse. */
static void
handle_empty(const char *request, int nbytes, StringInfo reply)
{
}

/* 'F': a handler that fails. */
static void
handle_fail(const char *request, int nbytes, StringInfo reply)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_EXCEPTION),
			 errmsg("netbuf_test: handler 'F' failed on purpose")));
}

/* ---- primary side: handlers that touch the database (issue 8) ---- */

/*
 * 'Q' + an SQL string: run it with SPI and reply 'Q' + the first column of
 * the first row as text, or 'Q' + the number of rows processed when it
 * returned none.  Registered with plain netbuf_register_handler, so it runs
 * in a transaction of its own (whatever transaction netbuf gives handlers
 * that need one): the tests check that its locks, snapshot and writes end
 * with the request, not with the channel.
 */
static void
handle_query(const char *request, int nbytes, StringInfo reply)
{
	char	   *sql = pnstrdup(request + 1, nbytes - 1);
	int			ret;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "netbuf_test: SPI_connect failed");
	ret = SPI_execute(sql, false, 0);
	if (ret < 0)
		elog(ERROR, "netbuf_test: SPI_execute failed: %s", SPI_result_code_string(ret));

	/* Built before SPI_finish, which frees what SPI_getvalue allocated. */
	appendStringInfoChar(reply, 'Q');
	if (SPI_tuptable != NULL && SPI_processed > 0)
	{
		char	   *value = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (value != NULL)
			appendStringInfoString(reply, value);
	}
	else
		appendStringInfo(reply, UINT64_FORMAT, SPI_processed);
	SPI_finish();
}

/*
 * netbuf_test.fail_secure_search_path: when on (ALTER ROLE ... SET), the
 * query with which netbuf secures a new channel's search_path fails, so a
 * test can check that a failed set-up never leaves a usable channel.
 */
static bool fail_secure_search_path = false;
static post_parse_analyze_hook_type prev_post_parse_analyze_hook = NULL;

static void
refuse_secure_search_path(ParseState *pstate, Query *query, JumbleState *jstate)
{
	if (prev_post_parse_analyze_hook)
		prev_post_parse_analyze_hook(pstate, query, jstate);
	if (fail_secure_search_path && pstate->p_sourcetext != NULL &&
		strstr(pstate->p_sourcetext, "set_config('search_path'") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("netbuf_test: refusing to secure search_path (netbuf_test.fail_secure_search_path is on)")));
}

void
_PG_init(void)
{
	DefineCustomBoolVariable("netbuf_test.fail_secure_search_path",
							 "Makes the query that secures search_path fail (for tests).",
							 NULL, &fail_secure_search_path, false,
							 PGC_SUSET, 0, NULL, NULL, NULL);
	prev_post_parse_analyze_hook = post_parse_analyze_hook;
	post_parse_analyze_hook = refuse_secure_search_path;

	load_file("libnetbuf", false);
	netbuf_register_handler('R', handle_reverse);
	netbuf_register_handler('S', handle_sleep);
	netbuf_register_handler('z', handle_empty);
	netbuf_register_handler('F', handle_fail);

	/* Handlers that touch the database (issue 8). */
	netbuf_register_handler('Q', handle_query);
}

/* ---- standby side: the seed's calls ---- */

static char *
conninfo_arg(FunctionCallInfo fcinfo, int argno)
{
	return PG_ARGISNULL(argno) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/*
 * exchange_n(conninfo, values int4[]) -> int4[]: the seed's example.  Sends
 * 'N' and the values, returns what the primary answered.
 */
PG_FUNCTION_INFO_V1(netbuf_test_exchange_n);
Datum
netbuf_test_exchange_n(PG_FUNCTION_ARGS)
{
	char	   *conninfo = conninfo_arg(fcinfo, 0);
	ArrayType  *values = PG_GETARG_ARRAYTYPE_P(1);
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	StringInfoData buf_blk_request;
	NetbufConn *wrconn;
	char	   *tmp;
	pgsocket	fd;
	int			len;
	Datum	   *result;
	StringInfoData reply;

	deconstruct_array(values, INT4OID, 4, true, TYPALIGN_INT, &elems, &nulls, &nelems);

	load_file("libnetbuf", false);

	wrconn = netbuf_connect(conninfo);

	initStringInfo(&buf_blk_request);
	pq_sendbyte(&buf_blk_request, 'N');
	for (int i = 0; i < nelems; i++)
		pq_sendint32(&buf_blk_request, nulls[i] ? 0 : DatumGetInt32(elems[i]));

	/* Send it */
	netbuf_send(wrconn, buf_blk_request.data, buf_blk_request.len);

	/* Read the data */
	len = netbuf_recv(wrconn, &tmp, &fd);
	if (len < 0 || len % 4 != 0)
		elog(ERROR, "netbuf_test: unexpected reply of length %d", len);

	reply.data = tmp;
	reply.len = len;
	reply.maxlen = len;
	reply.cursor = 0;
	result = palloc(sizeof(Datum) * (len / 4 + 1));
	for (int i = 0; i < len / 4; i++)
		result[i] = Int32GetDatum(pq_getmsgint(&reply, 4));

	netbuf_disconnect(wrconn);
	PG_RETURN_ARRAYTYPE_P(construct_array(result, len / 4, INT4OID, 4, true, TYPALIGN_INT));
}

/* A bytea holding a copy of len bytes of a reply netbuf returned. */
static bytea *
reply_bytea(const char *reply, int len)
{
	bytea	   *result = palloc(VARHDRSZ + len);

	SET_VARSIZE(result, VARHDRSZ + len);
	memcpy(VARDATA(result), reply, len);
	return result;
}

static bytea *
exchange(NetbufConn *conn, bytea *request)
{
	char	   *reply;
	int			len;

	netbuf_send(conn, VARDATA_ANY(request), VARSIZE_ANY_EXHDR(request));
	len = netbuf_recv(conn, &reply, NULL);
	if (len < 0)
		ereport(ERROR, (errmsg("netbuf_test: the primary ended the stream")));
	return reply_bytea(reply, len);
}

/* request(conninfo, message bytea) -> bytea: one exchange on a new channel. */
PG_FUNCTION_INFO_V1(netbuf_test_request);
Datum
netbuf_test_request(PG_FUNCTION_ARGS)
{
	char	   *conninfo = conninfo_arg(fcinfo, 0);
	bytea	   *request = PG_GETARG_BYTEA_PP(1);
	NetbufConn *conn;
	bytea	   *result;

	load_file("libnetbuf", false);
	conn = netbuf_connect(conninfo);
	PG_TRY();
	{
		result = exchange(conn, request);
	}
	PG_FINALLY();
	{
		netbuf_disconnect(conn);
	}
	PG_END_TRY();
	PG_RETURN_BYTEA_P(result);
}

/*
 * hold(conninfo, ms int4): open a channel, echo once, then keep it open and
 * idle for ms milliseconds (interruptibly), as a long-lived channel does.
 */
PG_FUNCTION_INFO_V1(netbuf_test_hold);
Datum
netbuf_test_hold(PG_FUNCTION_ARGS)
{
	char	   *conninfo = conninfo_arg(fcinfo, 0);
	TimestampTz end = GetCurrentTimestamp() + (TimestampTz) PG_GETARG_INT32(1) * 1000;
	NetbufConn *conn;
	char	   *reply;

	load_file("libnetbuf", false);
	conn = netbuf_connect(conninfo);
	netbuf_send(conn, "Ehold", 5);
	if (netbuf_recv(conn, &reply, NULL) != 5)
		elog(ERROR, "netbuf_test: unexpected reply to the hold echo");
	while (GetCurrentTimestamp() < end)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	netbuf_disconnect(conn);
	PG_RETURN_VOID();
}

/*
 * The session channel: this backend's long-lived handle, opened on first use
 * (to primary_conninfo, or to the conninfo given to session_connect) and
 * kept across calls and errors, as the seed keeps its connection.
 */
static NetbufConn *session_conn = NULL;

/*
 * Open the session channel if it is not open.  From ABI 2 on, a channel
 * belongs to the current resource owner and is closed at the end of the
 * statement or transaction, so a handle kept in a static must be pinned to
 * live for the session; with ABI 1 every channel lives for the session.
 */
static NetbufConn *
session_open(const char *conninfo)
{
	load_file("libnetbuf", false);
	if (session_conn == NULL)
	{
		NetbufConn *conn = netbuf_connect(conninfo);

#if NETBUF_ABI_VERSION >= 2
		netbuf_pin(conn);
#endif
		session_conn = conn;
	}
	return session_conn;
}

/* session_request(message bytea) -> bytea: one exchange on the session channel. */
PG_FUNCTION_INFO_V1(netbuf_test_session_request);
Datum
netbuf_test_session_request(PG_FUNCTION_ARGS)
{
	NetbufConn *conn = session_open(NULL);

	PG_RETURN_BYTEA_P(exchange(conn, PG_GETARG_BYTEA_PP(0)));
}

/*
 * session_connect(conninfo text): open the session channel to conninfo (a
 * test tags it with its own application_name to find its serving backend).
 * ERROR if it is already open, so that a test never uses another channel
 * than the one it means.
 */
PG_FUNCTION_INFO_V1(netbuf_test_session_connect);
Datum
netbuf_test_session_connect(PG_FUNCTION_ARGS)
{
	if (session_conn != NULL)
		elog(ERROR, "netbuf_test: the session channel is already open");
	(void) session_open(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_VOID();
}

/* session_send(message bytea): netbuf_send on the session channel, no recv. */
PG_FUNCTION_INFO_V1(netbuf_test_session_send);
Datum
netbuf_test_session_send(PG_FUNCTION_ARGS)
{
	NetbufConn *conn = session_open(NULL);
	bytea	   *message = PG_GETARG_BYTEA_PP(0);

	netbuf_send(conn, VARDATA_ANY(message), VARSIZE_ANY_EXHDR(message));
	PG_RETURN_VOID();
}

/*
 * session_queue(messages bytea[]): netbuf_queue each message on the session
 * channel, then one netbuf_flush; the replies are left for session_recv.
 */
PG_FUNCTION_INFO_V1(netbuf_test_session_queue);
Datum
netbuf_test_session_queue(PG_FUNCTION_ARGS)
{
	NetbufConn *conn = session_open(NULL);
	ArrayType  *messages = PG_GETARG_ARRAYTYPE_P(0);
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;

	deconstruct_array(messages, BYTEAOID, -1, false, TYPALIGN_INT, &elems, &nulls, &nelems);
	for (int i = 0; i < nelems; i++)
	{
		bytea	   *message;

		if (nulls[i])
			elog(ERROR, "netbuf_test: message %d is NULL", i + 1);
		message = DatumGetByteaPP(elems[i]);
		netbuf_queue(conn, VARDATA_ANY(message), VARSIZE_ANY_EXHDR(message));
	}
	netbuf_flush(conn);
	PG_RETURN_VOID();
}

/* netbuf's buffer of the last reply session_recv returned, and its length. */
static char *session_last_reply = NULL;
static int	session_last_len = 0;

/*
 * session_forward_last() -> bytea: netbuf_send the buffer of the last reply
 * session_recv returned, as it is (netbuf.h: it stays valid until the next
 * netbuf_recv, even when this send reconnects), then return the reply.
 */
PG_FUNCTION_INFO_V1(netbuf_test_session_forward_last);
Datum
netbuf_test_session_forward_last(PG_FUNCTION_ARGS)
{
	char	   *reply;
	int			len;

	if (session_conn == NULL || session_last_reply == NULL)
		elog(ERROR, "netbuf_test: no reply to forward");
	netbuf_send(session_conn, session_last_reply, session_last_len);
	session_last_reply = NULL;
	len = netbuf_recv(session_conn, &reply, NULL);
	if (len < 0)
		PG_RETURN_NULL();
	PG_RETURN_BYTEA_P(reply_bytea(reply, len));
}

/*
 * session_recv() -> bytea: the next reply on the session channel; NULL when
 * the primary ended the stream.  It opens nothing: without a session
 * channel it is an ERROR.
 */
PG_FUNCTION_INFO_V1(netbuf_test_session_recv);
Datum
netbuf_test_session_recv(PG_FUNCTION_ARGS)
{
	char	   *reply;
	int			len;

	if (session_conn == NULL)
		elog(ERROR, "netbuf_test: the session channel is not open");
	len = netbuf_recv(session_conn, &reply, NULL);
	if (len < 0)
		PG_RETURN_NULL();
	session_last_reply = reply;
	session_last_len = len;
	PG_RETURN_BYTEA_P(reply_bytea(reply, len));
}

/* session_disconnect(): close the session channel, if it is open. */
PG_FUNCTION_INFO_V1(netbuf_test_session_disconnect);
Datum
netbuf_test_session_disconnect(PG_FUNCTION_ARGS)
{
	NetbufConn *conn = session_conn;

	/* Forget it first: a failing disconnect must not leave a dangling handle. */
	session_conn = NULL;
	if (conn != NULL)
		netbuf_disconnect(conn);
	PG_RETURN_VOID();
}

/*
 * leak(conninfo text): open a channel, exchange one echo and return without
 * netbuf_disconnect -- the bug netbuf must catch (a WARNING at commit and
 * the channel closed), as PostgreSQL catches a file left open.
 */
PG_FUNCTION_INFO_V1(netbuf_test_leak);
Datum
netbuf_test_leak(PG_FUNCTION_ARGS)
{
	char	   *conninfo = conninfo_arg(fcinfo, 0);
	NetbufConn *conn;
	char	   *reply;

	load_file("libnetbuf", false);
	conn = netbuf_connect(conninfo);
	netbuf_send(conn, "Eleak", 5);
	if (netbuf_recv(conn, &reply, NULL) != 5 || memcmp(reply, "Eleak", 5) != 0)
		elog(ERROR, "netbuf_test: unexpected reply to the leak echo");
	PG_RETURN_VOID();
}

/*
 * send_all(conninfo, messages bytea[]): send each message and wait for no
 * reply, to block in netbuf_send when the primary does not read.
 */
PG_FUNCTION_INFO_V1(netbuf_test_send_all);
Datum
netbuf_test_send_all(PG_FUNCTION_ARGS)
{
	char	   *conninfo = conninfo_arg(fcinfo, 0);
	ArrayType  *messages = PG_GETARG_ARRAYTYPE_P(1);
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	NetbufConn *conn;

	deconstruct_array(messages, BYTEAOID, -1, false, TYPALIGN_INT, &elems, &nulls, &nelems);
	load_file("libnetbuf", false);
	conn = netbuf_connect(conninfo);
	PG_TRY();
	{
		for (int i = 0; i < nelems; i++)
		{
			bytea	   *message = DatumGetByteaPP(elems[i]);

			netbuf_send(conn, VARDATA_ANY(message), VARSIZE_ANY_EXHDR(message));
		}
	}
	PG_FINALLY();
	{
		netbuf_disconnect(conn);
	}
	PG_END_TRY();
	PG_RETURN_VOID();
}

/*
 * pipeline(conninfo, count, depth) -> int8: count echo requests, depth at a
 * time in flight (netbuf_queue x depth, netbuf_flush, netbuf_recv x depth);
 * checks every reply against its request and returns how many matched.
 */
PG_FUNCTION_INFO_V1(netbuf_test_pipeline);
Datum
netbuf_test_pipeline(PG_FUNCTION_ARGS)
{
	char	   *conninfo = conninfo_arg(fcinfo, 0);
	int32		count = PG_GETARG_INT32(1);
	int32		depth = PG_GETARG_INT32(2);
	NetbufConn *conn;
	int64		matched = 0;

	if (depth < 1)
		elog(ERROR, "netbuf_test: depth must be at least 1");
	load_file("libnetbuf", false);
	conn = netbuf_connect(conninfo);
	for (int32 sent = 0; sent < count;)
	{
		int32		batch = Min(depth, count - sent);

		for (int32 i = 0; i < batch; i++)
		{
			char		request[5] = {'E'};
			uint32		seq = pg_hton32((uint32) (sent + i));

			memcpy(request + 1, &seq, 4);
			netbuf_queue(conn, request, sizeof(request));
		}
		netbuf_flush(conn);
		for (int32 i = 0; i < batch; i++)
		{
			char	   *reply;
			uint32		seq;

			if (netbuf_recv(conn, &reply, NULL) != 5 || reply[0] != 'E')
				elog(ERROR, "netbuf_test: reply %d is not an echo", sent + i);
			memcpy(&seq, reply + 1, 4);
			if (pg_ntoh32(seq) != (uint32) (sent + i))
				elog(ERROR, "netbuf_test: reply %u came where %d was expected",
					 pg_ntoh32(seq), sent + i);
			matched++;
		}
		sent += batch;
	}
	netbuf_disconnect(conn);
	PG_RETURN_INT64(matched);
}

/* misuse(what text): call the C API wrongly; each must raise an ERROR. */
PG_FUNCTION_INFO_V1(netbuf_test_misuse);
Datum
netbuf_test_misuse(PG_FUNCTION_ARGS)
{
	char	   *what = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *buffer;

	load_file("libnetbuf", false);
	if (strcmp(what, "null_conn_send") == 0)
		netbuf_send(NULL, "E", 1);
	else if (strcmp(what, "null_conn_recv") == 0)
		(void) netbuf_recv(NULL, &buffer, NULL);
	else
	{
		(void) session_open(NULL);
		if (strcmp(what, "null_buffer") == 0)
			netbuf_send(session_conn, NULL, 4);
		else if (strcmp(what, "negative_length") == 0)
			netbuf_send(session_conn, "E", -1);
		else if (strcmp(what, "empty") == 0)
			netbuf_send(session_conn, "", 0);
		else
			elog(ERROR, "netbuf_test: unknown misuse \"%s\"", what);
	}
	PG_RETURN_VOID();
}
