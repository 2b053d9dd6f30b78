/*
 * netbuf_bench.c -- the in-backend rows of `make bench`.
 *
 * Run in a backend on the standby, the loops below time the same echo
 * exchanges three ways, from the same kind of process:
 *
 *	(d)  netbuf through include/netbuf.h (netbuf_send/queue/flush/recv);
 *	(b') the same exchanges hand-written with libpq: PQputCopyData, PQflush,
 *		 PQgetCopyData in non-blocking mode, sleeping on the latch and the
 *		 socket (WaitLatchOrSocket + CHECK_FOR_INTERRUPTS) as
 *		 libpqwalreceiver.c and netbuf's own standby/channel.c do;
 *	(e') one prepared SELECT $1::bytea per message (libpq pipeline mode
 *		 when depth > 1), waited for the same way.
 *
 * Set-up (connect, CALL netbuf.serve(), PREPARE) is not timed and uses
 * libpq's blocking calls; the driver bounds it with connect_timeout.
 *
 * On the primary (in shared_preload_libraries after libnetbuf) the module
 * registers op 'T', an echo in the transaction netbuf starts per request
 * for a handler registered without NETBUF_HANDLER_NO_TRANSACTION: the
 * (f'') row against (f), whose 'E' runs outside any, is that cost.
 */
#include "postgres.h"

#include <time.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/pg_bswap.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/wait_event.h"

#include "libpq-fe.h"
#include "netbuf.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* 'T': the request back, op code included, as the built-in 'E' answers. */
static void
echo_in_transaction(const char *request, int nbytes, StringInfo reply)
{
	appendBinaryStringInfo(reply, request, nbytes);
}

void
_PG_init(void)
{
	load_file("libnetbuf", false);
	netbuf_register_handler('T', echo_in_transaction);
}

#define WARMUP 200				/* messages, not timed */
#define CONNECT_WARMUP 3		/* connections, not timed */
#define BYTEAOID_ 17

typedef enum BenchKind
{
	KIND_NETBUF,				/* queue x depth, flush, recv x depth */
	KIND_NETBUF_SEED,			/* send x depth, recv x depth */
	KIND_LIBPQ,					/* put x depth, flush, get x depth */
	KIND_LIBPQ_SEED,			/* (put, flush) x depth, get x depth */
	KIND_SELECT					/* prepared SELECT $1::bytea */
} BenchKind;

typedef struct Bench
{
	BenchKind	kind;
	int			payload;
	int			depth;
	int			seq_offset;		/* where the sequence number goes */
	char	   *msg;
	NetbufConn *nb;
	PGconn	   *pq;
} Bench;

static int64
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU ns of a process so far (first field of /proc/PID/schedstat), or -1. */
static int64
schedstat_ns(int pid)
{
	char		path[64];
	long long	ns;
	FILE	   *f;
	int			n;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", pid);
	f = AllocateFile(path, "r");
	if (f == NULL)
		return -1;
	n = fscanf(f, "%lld", &ns);
	FreeFile(f);
	return n == 1 ? (int64) ns : -1;
}

static void
pq_fail(PGconn *conn, const char *what)
{
	ereport(ERROR,
			(errmsg("netbuf_bench: %s failed: %s", what, PQerrorMessage(conn))));
}

/* Sleep on the latch and the socket, then serve interrupts, as standby/channel.c. */
static void
pq_wait(PGconn *conn, int events)
{
	int			rc;

	rc = WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | events,
						   PQsocket(conn), -1L, PG_WAIT_EXTENSION);
	if (rc & WL_LATCH_SET)
		ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/* Non-blocking PQflush until all is written; libpq reads while it waits. */
static void
pq_flush(PGconn *conn)
{
	int			r;

	while ((r = PQflush(conn)) == 1)
		pq_wait(conn, WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE);
	if (r < 0)
		pq_fail(conn, "PQflush");
}

static void
pq_put(PGconn *conn, const char *buf, int len)
{
	int			r;

	while ((r = PQputCopyData(conn, buf, len)) == 0)
	{
		/* libpq's buffer is full: make room. */
		if (PQflush(conn) < 0)
			pq_fail(conn, "PQflush");
		pq_wait(conn, WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE);
	}
	if (r < 0)
		pq_fail(conn, "PQputCopyData");
}

/* The next CopyData message, as libpqrcv_receive reads it. */
static int
pq_get(PGconn *conn, char **buf)
{
	bool		consumed = false;

	for (;;)
	{
		int			n = PQgetCopyData(conn, buf, 1);

		if (n > 0)
			return n;
		if (n < 0)
			pq_fail(conn, n == -1 ? "reading (the primary ended the stream)" : "PQgetCopyData");
		if (consumed)
			pq_wait(conn, WL_SOCKET_READABLE);
		if (!PQconsumeInput(conn))
			pq_fail(conn, "PQconsumeInput");
		consumed = true;
	}
}

/* The next result, without blocking outside the latch wait. */
static PGresult *
pq_result(PGconn *conn)
{
	while (PQisBusy(conn))
	{
		if (!PQconsumeInput(conn))
			pq_fail(conn, "PQconsumeInput");
		if (PQisBusy(conn))
			pq_wait(conn, WL_SOCKET_READABLE);
	}
	return PQgetResult(conn);
}

static void
pq_expect(PGconn *conn, PGresult *res, ExecStatusType want, const char *what)
{
	if (PQresultStatus(res) != want)
		ereport(ERROR,
				(errmsg("netbuf_bench: %s: expected %s, got %s: %s", what,
						PQresStatus(want), PQresStatus(PQresultStatus(res)),
						res ? PQresultErrorMessage(res) : PQerrorMessage(conn))));
}

/*
 * PQconnectdb, or with channel_options the way netbuf_connect connects: the
 * whole conninfo expanded as dbname, then libpq's options carrying a secure
 * search_path (the benchmark's conninfo has no options of its own to merge).
 */
static PGconn *
pq_connect_with(const char *conninfo, bool channel_options)
{
	const char *const keys[] = {"dbname", "options", NULL};
	const char *const vals[] = {conninfo, "-c search_path=pg_catalog,pg_temp", NULL};
	PGconn	   *conn = channel_options ? PQconnectdbParams(keys, vals, 1) : PQconnectdb(conninfo);

	if (PQstatus(conn) != CONNECTION_OK)
	{
		char	   *msg = pstrdup(PQerrorMessage(conn));

		PQfinish(conn);
		ereport(ERROR, (errmsg("netbuf_bench: could not connect: %s", msg)));
	}
	return conn;
}

static PGconn *
pq_connect(const char *conninfo)
{
	return pq_connect_with(conninfo, false);
}

static void
pq_exec(PGconn *conn, const char *sql, ExecStatusType want)
{
	PGresult   *res = PQexec(conn, sql);

	pq_expect(conn, res, want, sql);
	PQclear(res);
}

static void
set_seq(Bench *b, uint32 seq)
{
	uint32		n = pg_hton32(seq);

	if (b->payload >= b->seq_offset + 4)
		memcpy(b->msg + b->seq_offset, &n, 4);
}

/* A reply must have the request's length and sequence number. */
static void
check_reply(Bench *b, const char *rep, int len, uint32 seq)
{
	uint32		got;

	if (len != b->payload)
		elog(ERROR, "netbuf_bench: reply %u has %d bytes, expected %d", seq, len, b->payload);
	if (b->payload >= b->seq_offset + 4)
	{
		memcpy(&got, rep + b->seq_offset, 4);
		if (pg_ntoh32(got) != seq)
			elog(ERROR, "netbuf_bench: reply %u came where %u was expected", pg_ntoh32(got), seq);
	}
}

static void
bench_open(Bench *b, const char *conninfo)
{
	PGresult   *res;
	Oid			types[1] = {BYTEAOID_};

	switch (b->kind)
	{
		case KIND_NETBUF:
		case KIND_NETBUF_SEED:
			load_file("libnetbuf", false);
			b->nb = netbuf_connect(conninfo);
			break;
		case KIND_LIBPQ:
		case KIND_LIBPQ_SEED:
			/* What netbuf_connect does, hand-written. */
			b->pq = pq_connect_with(conninfo, true);
			pq_exec(b->pq, "CALL netbuf.serve()", PGRES_COPY_BOTH);
			break;
		case KIND_SELECT:
			b->pq = pq_connect(conninfo);
			res = PQprepare(b->pq, "echo", "SELECT $1::bytea", 1, types);
			pq_expect(b->pq, res, PGRES_COMMAND_OK, "PQprepare");
			PQclear(res);
			if (b->depth > 1 && PQenterPipelineMode(b->pq) != 1)
				pq_fail(b->pq, "PQenterPipelineMode");
			break;
	}
	if (b->pq != NULL && PQsetnonblocking(b->pq, 1) != 0)
		pq_fail(b->pq, "PQsetnonblocking");
}

static void
bench_close(Bench *b)
{
	if (b->nb != NULL)
		netbuf_disconnect(b->nb);
	if (b->pq != NULL)
		PQfinish(b->pq);
	b->nb = NULL;
	b->pq = NULL;
}

/* depth SELECTs; one result each, then (pipeline mode) the sync. */
static void
select_batch(Bench *b, uint32 seq)
{
	const char *values[1] = {b->msg};
	const int	lengths[1] = {b->payload};
	const int	formats[1] = {1};	/* binary in and out */

	for (int i = 0; i < b->depth; i++)
	{
		set_seq(b, seq + i);
		if (PQsendQueryPrepared(b->pq, "echo", 1, values, lengths, formats, 1) != 1)
			pq_fail(b->pq, "PQsendQueryPrepared");
	}
	if (b->depth > 1 && PQpipelineSync(b->pq) != 1)
		pq_fail(b->pq, "PQpipelineSync");
	pq_flush(b->pq);
	for (int i = 0; i < b->depth; i++)
	{
		PGresult   *res = pq_result(b->pq);

		pq_expect(b->pq, res, PGRES_TUPLES_OK, "SELECT $1::bytea");
		if (PQntuples(res) != 1)
			elog(ERROR, "netbuf_bench: SELECT returned %d rows", PQntuples(res));
		check_reply(b, PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0), seq + i);
		PQclear(res);
		/* Each statement's results end with a NULL. */
		if ((res = pq_result(b->pq)) != NULL)
			elog(ERROR, "netbuf_bench: a second result (%s)", PQresStatus(PQresultStatus(res)));
	}
	if (b->depth > 1)
	{
		PGresult   *res = pq_result(b->pq);

		pq_expect(b->pq, res, PGRES_PIPELINE_SYNC, "PQpipelineSync");
		PQclear(res);
	}
}

/* One batch: depth requests out, depth replies in, each checked. */
static void
bench_batch(Bench *b, uint32 seq)
{
	char	   *rep;
	int			len;

	switch (b->kind)
	{
		case KIND_NETBUF:
		case KIND_NETBUF_SEED:
			for (int i = 0; i < b->depth; i++)
			{
				set_seq(b, seq + i);
				if (b->kind == KIND_NETBUF_SEED)
					netbuf_send(b->nb, b->msg, b->payload);
				else
					netbuf_queue(b->nb, b->msg, b->payload);
			}
			if (b->kind == KIND_NETBUF)
				netbuf_flush(b->nb);
			for (int i = 0; i < b->depth; i++)
			{
				len = netbuf_recv(b->nb, &rep, NULL);
				if (len < 0)
					elog(ERROR, "netbuf_bench: the primary ended the stream");
				check_reply(b, rep, len, seq + i);
			}
			break;
		case KIND_LIBPQ:
		case KIND_LIBPQ_SEED:
			for (int i = 0; i < b->depth; i++)
			{
				set_seq(b, seq + i);
				pq_put(b->pq, b->msg, b->payload);
				if (b->kind == KIND_LIBPQ_SEED)
					pq_flush(b->pq);
			}
			pq_flush(b->pq);
			for (int i = 0; i < b->depth; i++)
			{
				len = pq_get(b->pq, &rep);
				check_reply(b, rep, len, seq + i);
				PQfreemem(rep);
			}
			break;
		case KIND_SELECT:
			select_batch(b, seq);
			break;
	}
}

static BenchKind
parse_kind(const char *kind)
{
	static const char *const names[] = {"netbuf", "netbuf_seed", "libpq", "libpq_seed", "select"};

	for (int i = 0; i < lengthof(names); i++)
		if (strcmp(kind, names[i]) == 0)
			return (BenchKind) i;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("netbuf_bench: unknown kind \"%s\"", kind)));
	pg_unreachable();
}

/*
 * run(kind, conninfo, payload, iterations, depth): time iterations messages
 * (rounded up to whole batches of depth) after a warm-up.
 */
PG_FUNCTION_INFO_V1(netbuf_bench_run);
Datum
netbuf_bench_run(PG_FUNCTION_ARGS)
{
	char	   *conninfo = text_to_cstring(PG_GETARG_TEXT_PP(1));
	int32		iterations = PG_GETARG_INT32(3);
	Bench		b = {0};
	int			batches,
				warm;
	Datum	   *lat;
	int64		start = 0,
				wall,
				cpu0 = -1,
				cpu1 = -1;
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	b.kind = parse_kind(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	b.payload = PG_GETARG_INT32(2);
	b.depth = PG_GETARG_INT32(4);
	b.seq_offset = b.kind == KIND_SELECT ? 0 : 1;
	if (b.payload < 1 || b.depth < 1 || iterations < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("netbuf_bench: payload, iterations and depth must be at least 1")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "netbuf_bench: return type must be a row type");

	batches = (iterations + b.depth - 1) / b.depth;
	warm = (WARMUP + b.depth - 1) / b.depth;
	lat = palloc(sizeof(Datum) * batches);
	b.msg = palloc(b.payload);
	memset(b.msg, 'x', b.payload);
	if (b.kind != KIND_SELECT)
		b.msg[0] = 'E';

	PG_TRY();
	{
		bench_open(&b, conninfo);
		for (int i = -warm; i < batches; i++)
		{
			int64		t0;

			if (i == 0)
			{
				if (b.pq != NULL)
					cpu0 = schedstat_ns(PQbackendPID(b.pq));
				start = now_ns();
			}
			t0 = now_ns();
			bench_batch(&b, (uint32) (i + warm) * b.depth);
			if (i >= 0)
				lat[i] = Float8GetDatum((now_ns() - t0) / 1e3 / b.depth);
		}
		wall = now_ns() - start;
		if (b.pq != NULL)
			cpu1 = schedstat_ns(PQbackendPID(b.pq));
	}
	PG_FINALLY();
	{
		bench_close(&b);
	}
	PG_END_TRY();

	values[0] = PointerGetDatum(construct_array(lat, batches, FLOAT8OID, 8,
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[1] = Float8GetDatum(wall / 1e3);
	values[2] = Float8GetDatum((cpu1 - cpu0) / 1e3);
	nulls[2] = cpu0 < 0 || cpu1 < 0;
	tupdesc = BlessTupleDesc(tupdesc);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * connect(kind, conninfo, n): n timed connections after a warm-up, each
 * closed again.  netbuf: netbuf_connect (connect with search_path secured
 * by the startup packet, CALL netbuf.serve()) + netbuf_disconnect.  bare: PQconnectdb + SELECT 1
 * + PQfinish.
 */
PG_FUNCTION_INFO_V1(netbuf_bench_connect);
Datum
netbuf_bench_connect(PG_FUNCTION_ARGS)
{
	char	   *kind = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *conninfo = text_to_cstring(PG_GETARG_TEXT_PP(1));
	int32		n = PG_GETARG_INT32(2);
	bool		use_netbuf = strcmp(kind, "netbuf") == 0;
	Datum	   *lat;

	if (!use_netbuf && strcmp(kind, "bare") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("netbuf_bench: unknown connect kind \"%s\"", kind)));
	if (n < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("netbuf_bench: n must be at least 1")));
	if (use_netbuf)
		load_file("libnetbuf", false);
	lat = palloc(sizeof(Datum) * n);
	for (int i = -CONNECT_WARMUP; i < n; i++)
	{
		int64		t0 = now_ns();

		if (use_netbuf)
			netbuf_disconnect(netbuf_connect(conninfo));
		else
		{
			PGconn	   *conn = pq_connect(conninfo);
			PGresult   *res = PQexec(conn, "SELECT 1");
			bool		ok = PQresultStatus(res) == PGRES_TUPLES_OK;

			PQclear(res);
			if (!ok)
			{
				char	   *msg = pstrdup(PQerrorMessage(conn));

				PQfinish(conn);
				elog(ERROR, "netbuf_bench: SELECT 1 failed: %s", msg);
			}
			PQfinish(conn);
		}
		if (i >= 0)
			lat[i] = Float8GetDatum((now_ns() - t0) / 1e3);
	}
	PG_RETURN_ARRAYTYPE_P(construct_array(lat, n, FLOAT8OID, 8, FLOAT8PASSBYVAL,
										  TYPALIGN_DOUBLE));
}
