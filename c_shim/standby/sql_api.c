/*-------------------------------------------------------------------------
 *
 * sql_api.c
 *	  The standby side of netbuf from SQL: netbuf.request(),
 *	  netbuf.requests(), netbuf.channels(), netbuf.disconnect() and
 *	  netbuf.disconnect_all() (sql/netbuf--1.0--1.1.sql).
 *
 * Each backend keeps a cache of session channels, one per (role, conninfo)
 * pair, as dblink and postgres_fdw keep their connections: opened on first
 * use with netbuf_connect and pinned (netbuf_pin), so they outlive the
 * statement.  Everything that keeps a reply from answering the wrong
 * request is ownership.c's: an ERROR or a cancel between send and receive
 * resets the channel, and this file opens a new connection for a cached
 * channel that is broken rather than reuse it (the Rust core would
 * reconnect by itself, but a new connection must pass the password rule
 * below first).
 *
 * The password rule (netbuf.password_required, common/gucs.c) is dblink's
 * and postgres_fdw's: unless the caller is a superuser or a superuser set
 * netbuf.password_required = off for it, the connection string must set a
 * password and the connection must have used it (PQconnectionUsedPassword),
 * so that a role cannot borrow the server's own credentials:
 * primary_conninfo, the OS user's password file, trust or peer
 * authentication.  The SQLSTATE is dblink's, 2F003.
 *
 * netbuf.channels() shows every channel of the backend: those of the
 * cache, then those C code opened with netbuf.h (ownership.c lists them).
 * The Rust core counts the requests, replies and bytes of each channel;
 * the cache adds up those of a channel's earlier connections and keeps its
 * errors and the last one (netbuf.h's callers see their own errors).
 *
 * IDENTIFICATION
 *	  c_shim/standby/sql_api.c
 *
 *-------------------------------------------------------------------------
 */
#include "internal.h"

#include <poll.h>

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "lib/ilist.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

/* Room for a masked connection string in netbuf.channels(). */
#define NETBUF_SQL_CONNINFO_SHOWN 1024

/*
 * netbuf.requests() receives the oldest replies once this many bytes of
 * requests are unanswered: the replies to a long array wait in the primary's
 * socket (its back-pressure), not in libpq's input buffer here.
 */
#define NETBUF_SQL_WINDOW_BYTES (1024 * 1024)

#define NETBUF_SQL_CHANNELS_COLS 12

typedef struct SqlChannel
{
	Oid			userid;			/* the role that opened it */
	char	   *conninfo;		/* as given; NULL for primary_conninfo */
	char	   *shown;			/* what channels() shows: passwords masked */
	NetbufConn *conn;			/* NULL after a failed re-open */
	NbChannelInfo before;		/* the counters of its earlier connections */
	int64		errors;
	char	   *last_error;		/* NULL until an error */
	dlist_node	node;
} SqlChannel;

/* This backend's channels opened from SQL, all pinned. */
static dlist_head sql_channels = DLIST_STATIC_INIT(sql_channels);

static SqlChannel *
sql_channel_find(Oid userid, const char *conninfo)
{
	dlist_iter	iter;

	dlist_foreach(iter, &sql_channels)
	{
		SqlChannel *ch = dlist_container(SqlChannel, node, iter.cur);

		if (ch->userid != userid)
			continue;
		if (ch->conninfo == NULL ? conninfo == NULL :
			(conninfo != NULL && strcmp(ch->conninfo, conninfo) == 0))
			return ch;
	}
	return NULL;
}

/* Remember err as the channel's last error (its message only). */
static void
sql_channel_note_error(SqlChannel *ch, MemoryContext cxt)
{
	MemoryContext ecxt = MemoryContextSwitchTo(cxt);
	ErrorData  *edata = CopyErrorData();

	MemoryContextSwitchTo(ecxt);
	ch->errors++;
	if (ch->last_error != NULL)
		pfree(ch->last_error);
	ch->last_error = MemoryContextStrdup(TopMemoryContext,
										 edata->message ? edata->message : "(no message)");
	FreeErrorData(edata);
}

/* Whether the password rule applies to the current role. */
static bool
password_rule_applies(void)
{
	return netbuf_password_required && !superuser();
}

/* The rule's first half, before connecting: a password must be given. */
static void
check_password_given(const char *conninfo)
{
	char		shown[NETBUF_SQL_CONNINFO_SHOWN];

	if (!password_rule_applies())
		return;
	if (conninfo == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
				 errmsg("netbuf: password is required"),
				 errdetail("Non-superusers cannot use this server's primary_conninfo (netbuf.password_required is on)."),
				 errhint("Pass a connection string with a password, or ask a superuser to set netbuf.password_required = off for your role.")));
	if (nb_rust->mask_conninfo(conninfo, shown, sizeof(shown)) != NB_CONNINFO_HAS_PASSWORD)
		ereport(ERROR,
				(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
				 errmsg("netbuf: password is required"),
				 errdetail("Non-superusers must give a password in the connection string (netbuf.password_required is on)."),
				 errhint("Add password=... to the connection string, or ask a superuser to set netbuf.password_required = off for your role.")));
}

/*
 * Open, pin and check a channel for the current role.  The rule's second
 * half: the primary must have asked for the password (not trust, peer or
 * a password of the server's own).
 */
static NetbufConn *
sql_connect(const char *conninfo)
{
	NetbufConn *conn;
	NbChannelInfo info;

	check_password_given(conninfo);
	conn = netbuf_standby_connect(conninfo);
	/* Pinned at once: nothing between can fail, and the cache holds it. */
	netbuf_standby_pin(conn);
	if (password_rule_applies())
	{
		(void) netbuf_conn_describe(conn, &info);
		if (!info.used_password)
		{
			netbuf_standby_disconnect(conn);
			ereport(ERROR,
					(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
					 errmsg("netbuf: password is required"),
					 errdetail("The primary did not ask for the password: non-superusers must authenticate with the password they give (netbuf.password_required is on)."),
					 errhint("Have the primary's pg_hba.conf ask this role for a password, or ask a superuser to set netbuf.password_required = off for your role.")));
		}
	}
	return conn;
}

/*
 * Whether a cached, connected channel with nothing in flight has data or
 * an end of file waiting: nothing may come unasked on a channel, so its
 * serving backend ended (terminated, the primary restarted) while it was
 * idle.  Opening a new connection then spares the next request an ERROR.
 */
static bool
sql_channel_peer_gone(pgsocket sock)
{
	struct pollfd pfd;
	int			rc;

	if (sock == PGINVALID_SOCKET)
		return true;
	pfd.fd = sock;
	pfd.events = POLLIN;
	pfd.revents = 0;
	do
		rc = poll(&pfd, 1, 0);
	while (rc < 0 && errno == EINTR);
	/* A failed poll says nothing about the peer: keep the channel. */
	return rc > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

/*
 * The current role's channel for conninfo (NULL: primary_conninfo), opened
 * or re-opened as needed.
 */
static SqlChannel *
sql_channel_get(const char *conninfo)
{
	Oid			userid = GetUserId();
	SqlChannel *volatile ch = sql_channel_find(userid, conninfo);
	NetbufConn *old;
	MemoryContext cxt = CurrentMemoryContext;

	if (ch != NULL && ch->conn != NULL)
	{
		NbChannelInfo info;
		pgsocket	sock = netbuf_conn_describe(ch->conn, &info);
		bool		stale;

		stale = info.state == NB_CHANNEL_BROKEN ||
			(info.in_flight == 0 &&
			 (info.state == NB_CHANNEL_STREAMING || info.state == NB_CHANNEL_IDLE) &&
			 sql_channel_peer_gone(sock));
		if (!stale)
			return ch;
		old = ch->conn;
		ch->before.requests += info.requests;
		ch->before.replies += info.replies;
		ch->before.bytes_sent += info.bytes_sent;
		ch->before.bytes_received += info.bytes_received;
		ch->conn = NULL;
		netbuf_standby_disconnect(old);
	}

	if (ch == NULL)
	{
		char		shown[NETBUF_SQL_CONNINFO_SHOWN];
		const char *effective = conninfo != NULL ? conninfo : PrimaryConnInfo;

		(void) nb_rust->mask_conninfo(effective != NULL ? effective : "", shown, sizeof(shown));
		ch = MemoryContextAllocZero(TopMemoryContext, sizeof(SqlChannel));
		ch->userid = userid;
		ch->conninfo = conninfo ? MemoryContextStrdup(TopMemoryContext, conninfo) : NULL;
		ch->shown = MemoryContextStrdup(TopMemoryContext, shown);
		PG_TRY();
		{
			ch->conn = sql_connect(conninfo);
		}
		PG_CATCH();
		{
			/* Never opened (or refused by the password rule): forget it. */
			pfree(ch->shown);
			if (ch->conninfo)
				pfree(ch->conninfo);
			pfree(ch);
			PG_RE_THROW();
		}
		PG_END_TRY();
		dlist_push_tail(&sql_channels, &ch->node);
		return ch;
	}

	/* A re-open: the entry keeps its counters and shows why it failed. */
	PG_TRY();
	{
		ch->conn = sql_connect(conninfo);
	}
	PG_CATCH();
	{
		sql_channel_note_error(ch, cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return ch;
}

/* op || payload, in a palloc'd buffer; *len gets its length. */
static char *
build_message(char op, bytea *payload, int *len)
{
	Size		n = VARSIZE_ANY_EXHDR(payload);
	char	   *message;

	if (n > (Size) (MaxAllocSize - 1))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("netbuf: a payload of %zu bytes is too large", n)));
	message = palloc(n + 1);
	message[0] = op;
	memcpy(message + 1, VARDATA_ANY(payload), n);
	*len = (int) (n + 1);
	return message;
}

/* Receive the next reply on ch as a bytea. */
static bytea *
receive_reply(SqlChannel *ch)
{
	char	   *data;
	int			n;
	bytea	   *reply;

	n = netbuf_standby_recv(ch->conn, &data, NULL);
	if (n < 0)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("netbuf: the primary ended the stream without replying")));
	reply = (bytea *) palloc(VARHDRSZ + n);
	SET_VARSIZE(reply, VARHDRSZ + n);
	memcpy(VARDATA(reply), data, n);
	return reply;
}

static char *
conninfo_arg(FunctionCallInfo fcinfo, int argno)
{
	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return NULL;
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/* netbuf.request(op "char", payload bytea, conninfo text) RETURNS bytea */
Datum
netbuf_shim_sql_request(PG_FUNCTION_ARGS)
{
	char		op;
	bytea	   *payload;
	char	   *conninfo;
	char	   *message;
	int			len;
	SqlChannel *ch;
	bytea	   *volatile reply = NULL;
	MemoryContext cxt = CurrentMemoryContext;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	op = PG_GETARG_CHAR(0);
	payload = PG_GETARG_BYTEA_PP(1);
	conninfo = conninfo_arg(fcinfo, 2);
	message = build_message(op, payload, &len);

	ch = sql_channel_get(conninfo);
	PG_TRY();
	{
		netbuf_standby_send(ch->conn, message, len);
		reply = receive_reply(ch);
	}
	PG_CATCH();
	{
		sql_channel_note_error(ch, cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	PG_RETURN_BYTEA_P(reply);
}

/* netbuf.requests(op "char", payloads bytea[], conninfo text) RETURNS bytea[] */
Datum
netbuf_shim_sql_requests(PG_FUNCTION_ARGS)
{
	char		op;
	ArrayType  *payloads;
	char	   *conninfo;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	Datum	   *replies;
	SqlChannel *ch;
	MemoryContext cxt = CurrentMemoryContext;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	op = PG_GETARG_CHAR(0);
	payloads = PG_GETARG_ARRAYTYPE_P(1);
	conninfo = conninfo_arg(fcinfo, 2);

	if (ARR_NDIM(payloads) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("netbuf: payloads must be a one-dimensional array, got %d dimensions",
						ARR_NDIM(payloads))));
	deconstruct_array(payloads, BYTEAOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("netbuf: payload %d of the array is NULL",
							ARR_LBOUND(payloads)[0] + i),
					 errdetail("Every element is sent as a request; a NULL one has no message.")));
	if (n == 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(BYTEAOID));

	replies = palloc(n * sizeof(Datum));
	ch = sql_channel_get(conninfo);
	PG_TRY();
	{
		int			received = 0;
		Size		unanswered = 0;

		for (int i = 0; i < n; i++)
		{
			int			len;
			char	   *message = build_message(op, DatumGetByteaPP(elems[i]), &len);

			netbuf_standby_queue(ch->conn, message, len);
			pfree(message);
			unanswered += len;

			/* Past the window: take the oldest replies before queueing more. */
			if (unanswered > NETBUF_SQL_WINDOW_BYTES)
			{
				netbuf_standby_flush(ch->conn);
				while (received <= i && unanswered > NETBUF_SQL_WINDOW_BYTES / 2)
				{
					replies[received] = PointerGetDatum(receive_reply(ch));
					unanswered -= VARSIZE_ANY_EXHDR(DatumGetByteaPP(elems[received])) + 1;
					received++;
				}
			}
		}
		netbuf_standby_flush(ch->conn);
		while (received < n)
		{
			replies[received] = PointerGetDatum(receive_reply(ch));
			received++;
		}
	}
	PG_CATCH();
	{
		sql_channel_note_error(ch, cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();

	PG_RETURN_ARRAYTYPE_P(construct_array(replies, n, BYTEAOID, -1, false, TYPALIGN_INT));
}

static const char *
state_name(const NbChannelInfo *info)
{
	switch (info->state)
	{
		case NB_CHANNEL_CONNECTING:
			return "connecting";
		case NB_CHANNEL_STREAMING:
			return "streaming";
		case NB_CHANNEL_DRAINING:
			return "draining";
		case NB_CHANNEL_IDLE:
			return "idle";
		case NB_CHANNEL_BROKEN:
			return "broken";
	}
	return "unknown";
}

/*
 * One row of netbuf.channels(): conn (NULL after a failed re-open) and, for
 * a channel of the cache, its entry ch (NULL for one of netbuf.h's).
 */
static void
channels_row(Tuplestorestate *tupstore, TupleDesc tupdesc, NetbufConn *conn,
			 const SqlChannel *ch)
{
	Datum		values[NETBUF_SQL_CHANNELS_COLS];
	bool		nulls[NETBUF_SQL_CHANNELS_COLS];
	NbChannelInfo info;
	char		conninfo[NETBUF_SQL_CONNINFO_SHOWN];
	bool		pinned = true;
	TimestampTz opened_at = 0;
	char	   *role = ch ? GetUserNameFromId(ch->userid, true) : NULL;
	int			c = 0;

	memset(nulls, 0, sizeof(nulls));
	memset(&info, 0, sizeof(info));
	conninfo[0] = '\0';
	if (conn != NULL)
	{
		(void) netbuf_conn_describe(conn, &info);
		netbuf_conn_show(conn, &pinned, &opened_at, conninfo, sizeof(conninfo));
	}
	if (ch != NULL)
	{
		info.requests += ch->before.requests;
		info.replies += ch->before.replies;
		info.bytes_sent += ch->before.bytes_sent;
		info.bytes_received += ch->before.bytes_received;
	}

	values[c++] = CStringGetTextDatum(ch ? ch->shown : conninfo);
	if (role != NULL)
		values[c++] = CStringGetTextDatum(role);
	else
		nulls[c++] = true;
	values[c++] = CStringGetTextDatum(conn ? state_name(&info) : "closed");
	if (info.serving_pid > 0)
		values[c++] = Int32GetDatum(info.serving_pid);
	else
		nulls[c++] = true;
	if (conn != NULL)
		values[c++] = TimestampTzGetDatum(opened_at);
	else
		nulls[c++] = true;
	values[c++] = Int64GetDatum(info.requests);
	values[c++] = Int64GetDatum(info.replies);
	if (ch != NULL)
		values[c++] = Int64GetDatum(ch->errors);
	else
		nulls[c++] = true;
	values[c++] = Int64GetDatum(info.bytes_sent);
	values[c++] = Int64GetDatum(info.bytes_received);
	if (ch != NULL && ch->last_error != NULL)
		values[c++] = CStringGetTextDatum(ch->last_error);
	else
		nulls[c++] = true;
	values[c++] = BoolGetDatum(pinned);
	Assert(c == NETBUF_SQL_CHANNELS_COLS);

	tuplestore_putvalues(tupstore, tupdesc, values, nulls);
}

/* netbuf.channels(): one row per channel of this backend. */
Datum
netbuf_shim_sql_channels(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc	tupdesc;
	Tuplestorestate *tupstore;
	MemoryContext oldcxt;
	dlist_iter	iter;
	List	   *mine = NIL;
	ListCell   *lc;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		(rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("netbuf: netbuf.channels() must be called where a set is accepted (in FROM)")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "netbuf: return type of netbuf.channels() must be a row type");

	oldcxt = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	tupdesc = CreateTupleDescCopy(tupdesc);
	tupstore = tuplestore_begin_heap(true, false, work_mem);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = tupstore;
	rsinfo->setDesc = tupdesc;
	MemoryContextSwitchTo(oldcxt);

	/* The cache's channels, with their role, errors and earlier connections. */
	dlist_foreach(iter, &sql_channels)
	{
		SqlChannel *ch = dlist_container(SqlChannel, node, iter.cur);

		channels_row(tupstore, tupdesc, ch->conn, ch);
		if (ch->conn != NULL)
			mine = lappend(mine, ch->conn);
	}
	/* Then those C code opened through netbuf.h. */
	foreach(lc, netbuf_conn_list())
	{
		NetbufConn *conn = (NetbufConn *) lfirst(lc);

		if (!list_member_ptr(mine, conn))
			channels_row(tupstore, tupdesc, conn, NULL);
	}
	PG_RETURN_NULL();
}

/* Close ch's connection (if it has one) and forget it. */
static void
sql_channel_close(SqlChannel *ch)
{
	NetbufConn *conn = ch->conn;

	/* Out of the cache first: a failure below must not leave it behind. */
	dlist_delete(&ch->node);
	ch->conn = NULL;
	if (ch->conninfo)
		pfree(ch->conninfo);
	if (ch->last_error)
		pfree(ch->last_error);
	pfree(ch->shown);
	pfree(ch);
	if (conn != NULL)
		netbuf_standby_disconnect(conn);
}

/* netbuf.disconnect(conninfo text DEFAULT NULL) RETURNS boolean */
Datum
netbuf_shim_sql_disconnect(PG_FUNCTION_ARGS)
{
	SqlChannel *ch = sql_channel_find(GetUserId(), conninfo_arg(fcinfo, 0));

	if (ch == NULL)
		PG_RETURN_BOOL(false);
	sql_channel_close(ch);
	PG_RETURN_BOOL(true);
}

/* netbuf.disconnect_all() RETURNS integer: every role's channels of this backend. */
Datum
netbuf_shim_sql_disconnect_all(PG_FUNCTION_ARGS)
{
	int32		count = 0;

	while (!dlist_is_empty(&sql_channels))
	{
		sql_channel_close(dlist_container(SqlChannel, node, dlist_head_node(&sql_channels)));
		count++;
	}
	PG_RETURN_INT32(count);
}
