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
#include "utils/memutils.h"
#include "utils/wait_event.h"

/*
 * The channel's wait set, ready to wait for socket_events on the socket of
 * connection generation (see nb_rust->socket_generation): built on first
 * use and again whenever the channel has a new connection (a reconnect
 * usually gets the old socket's number, but the old registration went with
 * the old socket), changed in place (one epoll_ctl) between reading and
 * writing, and otherwise reused as it is.
 */
static WaitEventSet *
netbuf_channel_wait_set(NetbufWaitSet *ws, pgsocket sock,
						unsigned long long generation, uint32 socket_events)
{
	WaitEventSet *set;

	if (ws->set != NULL && !ws->suspect && ws->generation == generation &&
		ws->socket == sock && ws->latch == (void *) MyLatch)
	{
		if (ws->socket_events != socket_events)
		{
			/*
			 * ModifyWaitEvent records the new events before epoll_ctl; if
			 * that fails its ERROR leaves the set unlike the kernel's, so it
			 * is marked to be rebuilt until the change is known to be done.
			 */
			ws->suspect = true;
			ModifyWaitEvent(ws->set, ws->socket_pos, socket_events, NULL);
			ws->socket_events = socket_events;
			ws->suspect = false;
		}
		return ws->set;
	}

	netbuf_wait_set_free(ws);
	set = netbuf_create_session_wait_set(3);
	PG_TRY();
	{
		/* The latch first: WaitEventSetWait reports it before the socket. */
		AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
		/* As in WaitLatchOrSocket: a standalone backend has no postmaster. */
		if (IsUnderPostmaster)
			AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		ws->socket_pos = AddWaitEventToSet(set, socket_events, sock, NULL, NULL);
	}
	PG_CATCH();
	{
		/* Nobody else would close its epoll FD. */
		FreeWaitEventSet(set);
		PG_RE_THROW();
	}
	PG_END_TRY();

	ws->set = set;
	ws->generation = generation;
	ws->socket = sock;
	ws->latch = (void *) MyLatch;
	ws->socket_events = socket_events;
	return set;
}

/*
 * Sleep until the socket is ready for what status asks, the latch is set or
 * the channel's deadline passes, then serve interrupts.  A cancel or a
 * terminate request raises its ERROR/FATAL here, outside any Rust frame.
 *
 * conn is NULL while netbuf_connect opens the channel.  A channel whose
 * connection is set up waits on its own wait set (see above); one still
 * connecting (netbuf_connect, or a send that reconnects) waits on a set
 * built for the one wait, since PQconnectPoll may replace its socket.
 * Either way a socket whose peer went away (EOF, reset) reads as readable,
 * READABLE is in every wait, and the step called next meets the error.
 */
static void
netbuf_wait(NetbufConn *conn, NbChannel *chan, NbStatus status, NetbufWait which)
{
	uint32		socket_events = WL_SOCKET_READABLE;
	long		timeout = nb_rust->wait_timeout_ms(chan);
	unsigned long long generation = 0;

	if (status == NB_WAIT_WRITE)
		socket_events |= WL_SOCKET_WRITEABLE;
	if (conn != NULL)
		generation = nb_rust->socket_generation(chan);

	if (generation != 0)
	{
		WaitEventSet *set;
		WaitEvent	event;

		set = netbuf_channel_wait_set(netbuf_conn_wait_set(conn),
									  nb_rust->socket(chan), generation,
									  socket_events);
		if (WaitEventSetWait(set, timeout, &event, 1, netbuf_wait_event(which)) > 0 &&
			(event.events & WL_LATCH_SET))
			ResetLatch(MyLatch);
	}
	else
	{
		int			events = WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | socket_events;
		int			rc;

		if (timeout >= 0)
			events |= WL_TIMEOUT;
		rc = WaitLatchOrSocket(MyLatch, events, nb_rust->socket(chan), timeout,
							   netbuf_wait_event(which));
		if (rc & WL_LATCH_SET)
			ResetLatch(MyLatch);
	}
	CHECK_FOR_INTERRUPTS();
}

/* Wait and repeat until a step is no longer waiting. */
#define NETBUF_RUN(conn, chan, status, step, which) \
	while (((status) = (step)) == NB_WAIT_READ || (status) == NB_WAIT_WRITE) \
		netbuf_wait((conn), (chan), (status), (which))

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
		NETBUF_RUN(NULL, chan, status, nb_rust->connect_continue(chan, &err), NETBUF_WAIT_CONNECT);
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
	NETBUF_RUN(conn, chan, status, nb_rust->send(chan, buffer, nbytes, &err), NETBUF_WAIT_SEND);
	netbuf_call_end(conn, status, &err);
}

void
netbuf_standby_flush(NetbufConn *conn)
{
	NbChannel  *chan = netbuf_call_begin(conn);
	NbStatus	status;
	NbError		err;

	NETBUF_RUN(conn, chan, status, nb_rust->flush(chan, &err), NETBUF_WAIT_SEND);
	netbuf_call_end(conn, status, &err);
}

/*
 * queue then flush, as one call (one handle check, one call into the Rust
 * core while nothing must wait): the per-message path of the seed's
 * request/reply loop.
 */
void
netbuf_standby_send(NetbufConn *conn, const char *buffer, int nbytes)
{
	NbChannel  *chan = netbuf_call_begin(conn);
	NbStatus	status;
	NbError		err;

	netbuf_conn_note_send(conn);
	NETBUF_RUN(conn, chan, status, nb_rust->send_flush(chan, buffer, nbytes, &err),
			   NETBUF_WAIT_SEND);
	/* Queued, not all written: flushing alone is what is left to wait for. */
	if (status == NB_QUEUED)
		NETBUF_RUN(conn, chan, status, nb_rust->flush(chan, &err), NETBUF_WAIT_SEND);
	netbuf_call_end(conn, status, &err);
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
	NETBUF_RUN(conn, chan, status, nb_rust->recv(chan, &data, &nbytes, &err), NETBUF_WAIT_RECV);
	netbuf_call_end(conn, status, &err);

	if (wait_fd != NULL)
		*wait_fd = nb_rust->socket(chan);
	if (status == NB_END_OF_STREAM)
		return -1;

	/* libpq hands out a writable buffer; we keep its type for the caller. */
	*buffer = unconstify(char *, data);
	return nbytes;
}
