/*
 * libpq_select -- the naive alternative to netbuf: one SQL statement per
 * message.  A prepared "SELECT $1::bytea" with the payload as a binary
 * parameter and a binary result, so neither side spends time on escaping.
 *
 *   libpq_select [--conninfo STR] [--payload BYTES] [--iterations N] [--depth D]
 *
 * D = 1: PQexecPrepared per message.  D > 1: libpq pipeline mode, D
 * PQsendQueryPrepared and one PQpipelineSync per batch, then the D results
 * and the sync; latency is per batch / D.  Each result must be its request,
 * byte for byte (bytes 0..3 carry a sequence number).
 */
#include "libpq_common.h"

#include <getopt.h>

#define WARMUP 200				/* messages, not measured */
#define BYTEAOID 17				/* pg_type.h is a server header */

static const char *const STMT = "echo";

/* The next result, or die: NULL here means the protocol went out of step. */
static PGresult *
next_result(PGconn *conn, ExecStatusType want)
{
	PGresult   *res = PQgetResult(conn);

	if (PQresultStatus(res) != want)
		die("PQgetResult: expected %s, got %s: %s", PQresStatus(want), PQresStatus(PQresultStatus(res)),
			res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
	return res;
}

/* One row, one binary column equal to msg numbered seq; clears res. */
static void
check_result(PGresult *res, unsigned char *msg, int len, uint32_t seq)
{
	if (len >= 4)
		put_be32(msg, seq);
	if (PQntuples(res) != 1 || PQnfields(res) != 1 || PQfformat(res, 0) != 1)
		die("result %u: expected one binary value, got %d rows, %d columns",
			seq, PQntuples(res), PQnfields(res));
	if (PQgetlength(res, 0, 0) != len || memcmp(PQgetvalue(res, 0, 0), msg, len) != 0)
		die("result %u (%d bytes) differs from its parameter (%d bytes)",
			seq, PQgetlength(res, 0, 0), len);
	PQclear(res);
}

/* Send d statements numbered seq.., read their d results into res[]. */
static void
exchange(PGconn *conn, unsigned char *msg, int len, uint32_t seq, int d, PGresult **res)
{
	const char *values[1] = {(const char *) msg};
	const int	lengths[1] = {len};
	const int	formats[1] = {1};	/* binary bytea in, binary out */

	if (d == 1)
	{
		if (len >= 4)
			put_be32(msg, seq);
		res[0] = PQexecPrepared(conn, STMT, 1, values, lengths, formats, 1);
		if (PQresultStatus(res[0]) != PGRES_TUPLES_OK)
			die("PQexecPrepared: %s",
				res[0] ? PQresultErrorMessage(res[0]) : PQerrorMessage(conn));
		return;
	}

	/*
	 * Blocking pipeline: libpq flushes as its buffer fills and, while it
	 * waits to write, reads the results the server is already sending, so a
	 * big batch cannot deadlock; it costs client memory instead.
	 */
	for (int i = 0; i < d; i++)
	{
		if (len >= 4)
			put_be32(msg, seq + i);
		if (PQsendQueryPrepared(conn, STMT, 1, values, lengths, formats, 1) != 1)
			die("PQsendQueryPrepared: %s", PQerrorMessage(conn));
	}
	if (PQpipelineSync(conn) != 1)
		die("PQpipelineSync: %s", PQerrorMessage(conn));
	for (int i = 0; i < d; i++)
	{
		PGresult   *end;

		res[i] = next_result(conn, PGRES_TUPLES_OK);
		/* In pipeline mode each statement's results end with a NULL. */
		if ((end = PQgetResult(conn)) != NULL)
			die("statement %u: a second result (%s)", seq + i,
				PQresStatus(PQresultStatus(end)));
	}
	PQclear(next_result(conn, PGRES_PIPELINE_SYNC));
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"conninfo", required_argument, NULL, 'c'},
		{"payload", required_argument, NULL, 'p'},
		{"iterations", required_argument, NULL, 'n'},
		{"depth", required_argument, NULL, 'd'},
		{NULL, 0, NULL, 0}
	};
	const Oid	types[1] = {BYTEAOID};
	const char *conninfo = "",
			   *transport;
	long		payload = 16,
				iters = -1,
				depth = 1,
				batches,
				warm;
	unsigned char *msg;
	PGresult  **res;
	double	   *lat;
	int64_t		cpu0,
				cpu1,
				start,
				wall;
	PGconn	   *conn;
	PGresult   *prep;
	int			c;

	progname = "libpq_select";
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
	{
		if (c == 'c')
			conninfo = optarg;
		else if (c == 'p')
			payload = parse_long(optarg, "--payload", 0, 64L << 20);
		else if (c == 'n')
			iters = parse_long(optarg, "--iterations", 1, 100000000);
		else if (c == 'd')
			depth = parse_long(optarg, "--depth", 1, 100000);
		else
			die("usage: libpq_select [--conninfo STR] [--payload BYTES] [--iterations N] [--depth D]");
	}
	if (optind != argc)
		die("unexpected argument \"%s\"", argv[optind]);

	/* Whole batches only: iterations is rounded up to a multiple of depth. */
	if (iters < 0)
		iters = default_iterations(payload);
	batches = (iters + depth - 1) / depth;
	iters = batches * depth;
	warm = (WARMUP + depth - 1) / depth;
	msg = xmalloc(payload);
	memset(msg, 'x', payload);
	res = xmalloc(sizeof(PGresult *) * depth);
	lat = xmalloc(sizeof(double) * batches);

	conn = connect_or_die(conninfo);
	prep = PQprepare(conn, STMT, "SELECT $1::bytea", 1, types);
	if (PQresultStatus(prep) != PGRES_COMMAND_OK)
		die("PQprepare: %s", prep ? PQresultErrorMessage(prep) : PQerrorMessage(conn));
	PQclear(prep);
	if (depth > 1 && PQenterPipelineMode(conn) != 1)
		die("PQenterPipelineMode: %s", PQerrorMessage(conn));

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
		exchange(conn, msg, payload, seq, depth, res);
		if (b >= 0)
			lat[b] = (now_ns() - t0) / 1e3 / depth;
		for (int i = 0; i < depth; i++)
			check_result(res[i], msg, payload, seq + i);
	}
	wall = now_ns() - start;
	cpu1 = backend_cpu_ns(conn);

	if (depth > 1 && PQexitPipelineMode(conn) != 1)
		die("PQexitPipelineMode: %s", PQerrorMessage(conn));
	transport = transport_of(conn);
	PQfinish(conn);
	print_result("libpq_select", transport, payload, depth, iters,
				 summarize(lat, batches), wall, cpu0 < 0 || cpu1 < 0 ? -1 : cpu1 - cpu0);
	return 0;
}
