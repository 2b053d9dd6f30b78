/*-------------------------------------------------------------------------
 *
 * channel.c
 *	  The standby side of netbuf: netbuf_connect / send / queue / flush /
 *	  recv for backend code, as waits around the Rust core's steps.
 *
 * The Rust core (src/channel.rs) does the libpq work without ever blocking;
 * this file does what only backend code may do: sleep on the latch and the
 * socket, serve interrupts and ereport.  libpq's blocking calls
 * (PQgetCopyData with async=0, a blocking PQputCopyData) would ignore
 * pg_terminate_backend, so none is used here.
 *
 * Each call brackets its steps with netbuf_call_begin / netbuf_call_end
 * (ownership.c), which is how an abort learns that an ERROR interrupted a
 * call; what the handle is and who owns it is ownership.c's business, as
 * are netbuf_pin and netbuf_disconnect.  netbuf.h has the user's view of
 * the error model.
 *
 * IDENTIFICATION
 *	  c_shim/standby/channel.c
 *
 *-------------------------------------------------------------------------
 */
#include "internal.h"

#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/wait_event.h"

/*
 * Sleep until the socket is ready for what status asks, the latch is set or
 * the channel's deadline passes, then serve interrupts.  A cancel or a
 * terminate request raises its ERROR/FATAL here, outside any Rust frame.
 */
static void
netbuf_wait(NbChannel *chan, NbStatus status, NetbufWait which)
{
	int			events = WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | WL_SOCKET_READABLE;
	long		timeout = nb_rust->wait_timeout_ms(chan);
	int			rc;

	if (status == NB_WAIT_WRITE)
		events |= WL_SOCKET_WRITEABLE;
	if (timeout >= 0)
		events |= WL_TIMEOUT;

	rc = WaitLatchOrSocket(MyLatch, events, nb_rust->socket(chan), timeout,
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
netbuf_standby_connect(const char *conninfo)
{
	NetbufConn *conn;
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

	conn = netbuf_conn_create();
	chan = nb_rust->connect_start(conninfo, &err);
	if (chan == NULL)
	{
		netbuf_conn_discard(conn);
		netbuf_raise(&err);
	}

	PG_TRY();
	{
		NETBUF_RUN(chan, status, nb_rust->connect_continue(chan, &err), NETBUF_WAIT_CONNECT);
		if (status != NB_DONE)
			netbuf_raise(&err);
	}
	PG_CATCH();
	{
		/* Interrupted or failed: nobody else holds the channel. */
		nb_rust->close(chan);
		netbuf_conn_discard(conn);
		PG_RE_THROW();
	}
	PG_END_TRY();

	/* From here to the end nothing can fail: the owner now holds it. */
	netbuf_conn_attach(conn, chan);
	return conn;
}

void
netbuf_standby_queue(NetbufConn *conn, const char *buffer, int nbytes)
{
	NbChannel  *chan = netbuf_call_begin(conn);
	NbStatus	status;
	NbError		err;

	netbuf_conn_note_send(conn);
	/* send checks buffer and nbytes and says what is wrong. */
	NETBUF_RUN(chan, status, nb_rust->send(chan, buffer, nbytes, &err), NETBUF_WAIT_SEND);
	netbuf_call_end(conn, status, &err);
}

void
netbuf_standby_flush(NetbufConn *conn)
{
	NbChannel  *chan = netbuf_call_begin(conn);
	NbStatus	status;
	NbError		err;

	NETBUF_RUN(chan, status, nb_rust->flush(chan, &err), NETBUF_WAIT_SEND);
	netbuf_call_end(conn, status, &err);
}

void
netbuf_standby_send(NetbufConn *conn, const char *buffer, int nbytes)
{
	netbuf_standby_queue(conn, buffer, nbytes);
	netbuf_standby_flush(conn);
}

int
netbuf_standby_recv(NetbufConn *conn, char **buffer, pgsocket *wait_fd)
{
	NbChannel  *chan;
	NbStatus	status;
	NbError		err;
	const char *data = NULL;
	int			nbytes = 0;

	if (buffer == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("netbuf: netbuf_recv needs a place to store the buffer pointer, got NULL")));

	chan = netbuf_call_begin(conn);
	NETBUF_RUN(chan, status, nb_rust->recv(chan, &data, &nbytes, &err), NETBUF_WAIT_RECV);
	netbuf_call_end(conn, status, &err);

	if (wait_fd != NULL)
		*wait_fd = nb_rust->socket(chan);
	if (status == NB_END_OF_STREAM)
		return -1;

	/* libpq hands out a writable buffer; we keep its type for the caller. */
	*buffer = unconstify(char *, data);
	return nbytes;
}
