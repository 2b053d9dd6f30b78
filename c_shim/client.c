/*
 * client.c -- the standby side of netbuf: netbuf_connect / send / recv /
 * disconnect for backend code.
 *
 * The Rust core (src/channel.rs) does the libpq work without ever blocking;
 * this file does what only backend code may do: sleep on the latch and the
 * socket, serve interrupts, account for the file descriptor and ereport.
 * libpq's blocking calls (PQgetCopyData with async=0, a blocking
 * PQputCopyData) would ignore pg_terminate_backend, so none is used here.
 */
#include "shim.h"

#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/wait_event.h"

/* A NetbufConn is the Rust channel itself. */
#define CHANNEL(conn) ((NbChannel *) (conn))

/*
 * Sleep until the socket is ready for what status asks, the latch is set or
 * the channel's deadline passes, then serve interrupts.  A cancel or a
 * terminate request raises its ERROR/FATAL here, outside any Rust frame.
 */
static void
netbuf_wait(NbChannel *chan, NbStatus status, NetbufWait which)
{
	int			events = WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | WL_SOCKET_READABLE;
	long		timeout = nb_wait_timeout_ms(chan);
	int			rc;

	if (status == NB_WAIT_WRITE)
		events |= WL_SOCKET_WRITEABLE;
	if (timeout >= 0)
		events |= WL_TIMEOUT;

	rc = WaitLatchOrSocket(MyLatch, events, nb_socket(chan), timeout,
						   netbuf_wait_event(which));
	if (rc & WL_LATCH_SET)
		ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/* Wait and repeat until a step is no longer waiting. */
#define NETBUF_RUN(chan, status, step, which) \
	while (((status) = (step)) == NB_WAIT_READ || (status) == NB_WAIT_WRITE) \
		netbuf_wait((chan), (status), (which))

NetbufConn *
netbuf_client_connect(const char *conninfo)
{
	NbChannel  *chan;
	NbStatus	status;
	NbError		err;

	if (conninfo == NULL || conninfo[0] == '\0')
	{
		if (PrimaryConnInfo == NULL || PrimaryConnInfo[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("netbuf: no conninfo given and primary_conninfo is not set"),
					 errhint("Pass a connection string to netbuf_connect, or call it on a standby.")));
		conninfo = PrimaryConnInfo;
	}

	/* The socket counts against max_files_per_process, as in libpqsrv_connect. */
	if (!AcquireExternalFD())
		ereport(ERROR,
				(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
				 errmsg("netbuf: could not connect to the primary"),
				 errdetail("There are too many open files on the local server.")));

	chan = nb_connect_start(conninfo, &err);
	if (chan == NULL)
	{
		ReleaseExternalFD();
		netbuf_raise(&err);
	}

	PG_TRY();
	{
		NETBUF_RUN(chan, status, nb_connect_continue(chan, &err), NETBUF_WAIT_CONNECT);
		if (status != NB_DONE)
			netbuf_raise(&err);
	}
	PG_CATCH();
	{
		/* Interrupted or failed: nobody else holds the channel. */
		nb_close(chan);
		ReleaseExternalFD();
		PG_RE_THROW();
	}
	PG_END_TRY();

	return (NetbufConn *) chan;
}

void
netbuf_client_queue(NetbufConn *conn, const char *buffer, int nbytes)
{
	NbStatus	status;
	NbError		err;

	/* nb_send checks conn, buffer and nbytes and says what is wrong. */
	NETBUF_RUN(CHANNEL(conn), status, nb_send(CHANNEL(conn), buffer, nbytes, &err), NETBUF_WAIT_SEND);
	if (status != NB_DONE)
		netbuf_raise(&err);
}

void
netbuf_client_flush(NetbufConn *conn)
{
	NbStatus	status;
	NbError		err;

	NETBUF_RUN(CHANNEL(conn), status, nb_flush(CHANNEL(conn), &err), NETBUF_WAIT_SEND);
	if (status != NB_DONE)
		netbuf_raise(&err);
}

void
netbuf_client_send(NetbufConn *conn, const char *buffer, int nbytes)
{
	netbuf_client_queue(conn, buffer, nbytes);
	netbuf_client_flush(conn);
}

int
netbuf_client_recv(NetbufConn *conn, char **buffer, pgsocket *wait_fd)
{
	NbStatus	status;
	NbError		err;
	const char *data = NULL;
	int			nbytes = 0;

	if (buffer == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("netbuf: netbuf_recv needs a place to store the buffer pointer, got NULL")));

	NETBUF_RUN(CHANNEL(conn), status,
			   nb_recv(CHANNEL(conn), &data, &nbytes, &err), NETBUF_WAIT_RECV);

	if (status == NB_ERROR)
		netbuf_raise(&err);
	if (wait_fd != NULL)
		*wait_fd = nb_socket(CHANNEL(conn));
	if (status == NB_END_OF_STREAM)
		return -1;

	/* libpq hands out a writable buffer; we keep its type for the caller. */
	*buffer = unconstify(char *, data);
	return nbytes;
}

void
netbuf_client_disconnect(NetbufConn *conn)
{
	if (conn == NULL)
		return;
	nb_close(CHANNEL(conn));
	ReleaseExternalFD();
}
