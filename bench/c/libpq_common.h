/*
 * bench/c/libpq_common.h -- libpq helpers shared by libpq_echo and
 * libpq_select: connect, run a statement expecting one status, and name the
 * transport a connection actually uses.
 */
#ifndef NETBUF_BENCH_LIBPQ_COMMON_H
#define NETBUF_BENCH_LIBPQ_COMMON_H

#include "common.h"

#include <libpq-fe.h>

/* PQconnectdb, or die with libpq's message. */
static inline PGconn *
connect_or_die(const char *conninfo)
{
	PGconn	   *conn = PQconnectdb(conninfo);

	if (conn == NULL)
		die("PQconnectdb: out of memory");
	if (PQstatus(conn) != CONNECTION_OK)
		die("connecting with \"%s\": %s", conninfo, PQerrorMessage(conn));
	return conn;
}

/* PQexec sql; die unless the result has status want. */
static inline void
exec_or_die(PGconn *conn, const char *sql, ExecStatusType want)
{
	PGresult   *res = PQexec(conn, sql);
	ExecStatusType got = PQresultStatus(res);	/* PGRES_FATAL_ERROR if NULL */

	if (got != want)
		die("%s: expected %s, got %s: %s", sql, PQresStatus(want), PQresStatus(got),
			res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
	PQclear(res);
}

/* What the JSON calls the transport: from the connection, not the conninfo. */
static inline const char *
transport_of(PGconn *conn)
{
	const char *host = PQhost(conn);

	if (PQsslInUse(conn))
		return "tls";
	/* PQhost gives the socket directory for a unix-domain connection. */
	if (host != NULL && (host[0] == '/' || host[0] == '@'))
		return "unix";
	return "tcp";
}

/* CPU ns of the serving backend so far (-1 if unreadable). */
static inline int64_t
backend_cpu_ns(PGconn *conn)
{
	int			pid = PQbackendPID(conn);

	if (pid <= 0)
		die("PQbackendPID: no backend");
	return cpu_ns_of(pid);
}

#endif
