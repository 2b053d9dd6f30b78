/*
 * libpq_echo -- the hand-written libpq baseline for netbuf: open a channel
 * the way netbuf_connect does (search_path in the startup packet's options,
 * CALL netbuf.serve(), COPY BOTH)
 * and time 'E' echoes with nothing but blocking libpq calls.
 *
 *   libpq_echo [--conninfo STR] [--payload BYTES] [--iterations N] [--depth D]
 *   libpq_echo [--conninfo STR] [--payload BYTES] --connect-only N
 *
 * A message is 'E' then payload-1 filler bytes (payload counts the whole
 * CopyData body); bytes 1..4 carry a sequence number so that a reply is
 * checked against its own request.  D = 1: strict request/reply.  D > 1: D
 * PQputCopyData, one PQflush, D PQgetCopyData; latency is per batch / D.
 *
 * --connect-only N times N channel set-ups (connect with options, CALL
 * netbuf.serve(), one echo, PQfinish) and N bare connections (connect,
 * SELECT 1, PQfinish), and prints two JSON objects instead of one.
 */
#include "libpq_common.h"

#include <getopt.h>

#define WARMUP 200				/* messages, not measured */
#define CONNECT_WARMUP 5		/* connections, not measured */

static PGconn *
open_channel(const char *conninfo)
{
	/*
	 * As netbuf_connect: search_path secured by the startup packet, so that
	 * no user schema can capture the CALL, which is the only query.  (The
	 * benchmark's conninfo has no options of its own to merge.)
	 */
	const char *const keys[] = {"dbname", "options", NULL};
	const char *const vals[] = {conninfo, "-c search_path=pg_catalog,pg_temp", NULL};
	PGconn	   *conn = PQconnectdbParams(keys, vals, 1);

	if (conn == NULL)
		die("PQconnectdbParams: out of memory");
	if (PQstatus(conn) != CONNECTION_OK)
		die("connecting with \"%s\": %s", conninfo, PQerrorMessage(conn));
	exec_or_die(conn, "CALL netbuf.serve()", PGRES_COPY_BOTH);
	return conn;
}

/* After the primary ended the stream: its error, for the message. */
static const char *
stream_error(PGconn *conn)
{
	PGresult   *res = PQgetResult(conn);

	return res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
}

/*
 * Send d requests numbered seq.., flush once, then read d replies into
 * rep[] (the caller checks and frees them after stopping its clock).
 * Blocking mode cannot deadlock on a big batch: while libpq waits to write
 * it also reads, buffering the replies the primary is already sending.
 */
static void
exchange(PGconn *conn, char *msg, int len, uint32_t seq, int d, char **rep, int *replen)
{
	for (int i = 0; i < d; i++)
	{
		if (len >= 5)
			put_be32((unsigned char *) msg + 1, seq + i);
		if (PQputCopyData(conn, msg, len) != 1)
			die("PQputCopyData: %s", PQerrorMessage(conn));
	}
	if (PQflush(conn) != 0)
		die("PQflush: %s", PQerrorMessage(conn));
	for (int i = 0; i < d; i++)
	{
		replen[i] = PQgetCopyData(conn, &rep[i], 0);
		if (replen[i] == -1)
			die("the primary ended the stream: %s", stream_error(conn));
		if (replen[i] < 0)
			die("PQgetCopyData: %s", PQerrorMessage(conn));
	}
}

/* Each reply must be its request, byte for byte; frees the replies. */
static void
check_replies(char *msg, int len, uint32_t seq, int d, char **rep, int *replen)
{
	for (int i = 0; i < d; i++)
	{
		if (len >= 5)
			put_be32((unsigned char *) msg + 1, seq + i);
		if (replen[i] != len || memcmp(rep[i], msg, len) != 0)
			die("reply %u (%d bytes) differs from its request (%d bytes)",
				seq + i, replen[i], len);
		PQfreemem(rep[i]);
	}
}

/* CopyDone, the primary's CopyDone, the CALL's completion, PQfinish. */
static void
close_channel(PGconn *conn)
{
	PGresult   *res;
	char	   *buf;
	int			n;

	if (PQputCopyEnd(conn, NULL) != 1 || PQflush(conn) != 0)
		die("PQputCopyEnd: %s", PQerrorMessage(conn));
	n = PQgetCopyData(conn, &buf, 0);
	if (n >= 0)
		die("a message after CopyDone (%d bytes)", n);
	if (n == -2)
		die("PQgetCopyData after CopyDone: %s", PQerrorMessage(conn));
	res = PQgetResult(conn);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		die("CALL netbuf.serve() did not complete: %s",
			res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
	PQclear(res);
	if ((res = PQgetResult(conn)) != NULL)
		die("unexpected result after the CALL: %s", PQresStatus(PQresultStatus(res)));
	PQfinish(conn);
}

/* --connect-only: two rows, channel set-up and a bare connection. */
static void
connect_only(const char *conninfo, char *msg, int len, long n)
{
	double	   *lat = xmalloc(sizeof(double) * n);
	const char *transport = NULL;
	char	   *rep;
	int			replen;
	int64_t		start = 0,
				wall;
	struct stats channel;

	for (long i = -CONNECT_WARMUP; i < n; i++)
	{
		int64_t		t0;
		PGconn	   *conn;

		if (i == 0)
			start = now_ns();
		t0 = now_ns();
		conn = open_channel(conninfo);
		exchange(conn, msg, len, 0, 1, &rep, &replen);
		if (transport == NULL)
			transport = transport_of(conn);
		PQfinish(conn);			/* Terminate: the serving backend exits */
		if (i >= 0)
			lat[i] = (now_ns() - t0) / 1e3;
		check_replies(msg, len, 0, 1, &rep, &replen);
	}
	wall = now_ns() - start;
	channel = summarize(lat, n);

	for (long i = -CONNECT_WARMUP; i < n; i++)
	{
		int64_t		t0;
		PGconn	   *conn;

		if (i == 0)
			start = now_ns();
		t0 = now_ns();
		conn = connect_or_die(conninfo);
		exec_or_die(conn, "SELECT 1", PGRES_TUPLES_OK);
		PQfinish(conn);
		if (i >= 0)
			lat[i] = (now_ns() - t0) / 1e3;
	}
	/* Both rows at the end: a failed run prints nothing on stdout. */
	print_result("connect_netbuf_libpq", transport, -1, 1, n, channel, wall, -2);
	print_result("connect_bare", transport, -1, 1, n, summarize(lat, n),
				 now_ns() - start, -2);
	free(lat);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"conninfo", required_argument, NULL, 'c'},
		{"payload", required_argument, NULL, 'p'},
		{"iterations", required_argument, NULL, 'n'},
		{"depth", required_argument, NULL, 'd'},
		{"connect-only", required_argument, NULL, 'C'},
		{NULL, 0, NULL, 0}
	};
	const char *conninfo = "",
			   *transport;
	long		payload = 16,
				iters = -1,
				depth = 1,
				nconnect = 0,
				batches,
				warm;
	char	   *msg,
			  **rep;
	int		   *replen;
	double	   *lat;
	int64_t		cpu0,
				cpu1,
				start,
				wall;
	PGconn	   *conn;
	int			c;

	progname = "libpq_echo";
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
	{
		if (c == 'c')
			conninfo = optarg;
		else if (c == 'p')
			payload = parse_long(optarg, "--payload", 1, 64L << 20);	/* netbuf.max_message_size */
		else if (c == 'n')
			iters = parse_long(optarg, "--iterations", 1, 100000000);
		else if (c == 'd')
			depth = parse_long(optarg, "--depth", 1, 100000);
		else if (c == 'C')
			nconnect = parse_long(optarg, "--connect-only", 1, 1000000);
		else
			die("usage: libpq_echo [--conninfo STR] [--payload BYTES] [--iterations N] "
				"[--depth D] [--connect-only N]");
	}
	if (optind != argc)
		die("unexpected argument \"%s\"", argv[optind]);

	msg = xmalloc(payload);
	msg[0] = 'E';
	memset(msg + 1, 'x', payload - 1);

	if (nconnect > 0)
	{
		connect_only(conninfo, msg, payload, nconnect);
		return 0;
	}

	/* Whole batches only: iterations is rounded up to a multiple of depth. */
	if (iters < 0)
		iters = default_iterations(payload);
	batches = (iters + depth - 1) / depth;
	iters = batches * depth;
	warm = (WARMUP + depth - 1) / depth;
	rep = xmalloc(sizeof(char *) * depth);
	replen = xmalloc(sizeof(int) * depth);
	lat = xmalloc(sizeof(double) * batches);

	conn = open_channel(conninfo);
	cpu0 = start = 0;
	for (long b = -warm; b < batches; b++)
	{
		uint32_t	seq = (uint32_t) (b * depth);
		int64_t		t0;

		if (b == 0)
		{
			cpu0 = backend_cpu_ns(conn);
			start = now_ns();
		}
		t0 = now_ns();
		exchange(conn, msg, payload, seq, depth, rep, replen);
		if (b >= 0)
			lat[b] = (now_ns() - t0) / 1e3 / depth;
		check_replies(msg, payload, seq, depth, rep, replen);
	}
	wall = now_ns() - start;
	cpu1 = backend_cpu_ns(conn);

	/* Close cleanly before printing: a failed close means a failed run. */
	transport = transport_of(conn);
	close_channel(conn);
	print_result("libpq_echo", transport, payload, depth, iters,
				 summarize(lat, batches), wall, cpu0 < 0 || cpu1 < 0 ? -1 : cpu1 - cpu0);
	return 0;
}
