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

#include <sys/stat.h>

#include "access/xlogrecovery.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

/* A NetbufConn is the Rust channel itself. */
#define CHANNEL(conn) ((NbChannel *) (conn))

/*
 * Each streaming channel keeps one WaitEventSet (latch, postmaster death,
 * socket), so a wait is one epoll_wait instead of WaitLatchOrSocket's
 * epoll_create, epoll_ctl x 3, epoll_wait and close.  A short list, since a
 * backend rarely has more than a few channels.
 */
typedef struct NetbufWaitSet
{
	NbChannel  *chan;
	pgsocket	sock;			/* the socket the set watches */
	ino_t		sock_ino;		/* and its identity */
	int			sock_pos;
	WaitEventSet *set;
	struct NetbufWaitSet *next;
} NetbufWaitSet;

static NetbufWaitSet *wait_sets = NULL;

/* Free chan's set, if it has one. */
static void
netbuf_forget_wait_set(NbChannel *chan)
{
	for (NetbufWaitSet **link = &wait_sets; *link != NULL; link = &(*link)->next)
	{
		NetbufWaitSet *ws = *link;

		if (ws->chan == chan)
		{
			*link = ws->next;
			FreeWaitEventSet(ws->set);
			pfree(ws);
			return;
		}
	}
}

/*
 * chan's set, made on first use and again whenever libpq's socket is another
 * one (a reconnect).  The inode tells: a new socket may get the old one's
 * number, and epoll would silently have dropped the old registration.
 */
static NetbufWaitSet *
netbuf_wait_set(NbChannel *chan)
{
	pgsocket	sock = nb_socket(chan);
	struct stat st;
	NetbufWaitSet *ws;

	if (fstat(sock, &st) != 0)
		ereport(ERROR,
				(errcode_for_socket_access(),
				 errmsg("netbuf: could not stat the channel's socket: %m")));
	for (ws = wait_sets; ws != NULL; ws = ws->next)
		if (ws->chan == chan)
			break;
	if (ws != NULL && ws->sock == sock && ws->sock_ino == st.st_ino)
		return ws;
	if (ws != NULL)
		netbuf_forget_wait_set(chan);

	/* Lives as long as the channel, across transactions. */
	ws = MemoryContextAllocZero(TopMemoryContext, sizeof(NetbufWaitSet));
#if PG_VERSION_NUM >= 170000
	ws->set = CreateWaitEventSet(NULL, 3);
#else
	ws->set = CreateWaitEventSet(TopMemoryContext, 3);
#endif
	AddWaitEventToSet(ws->set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	if (IsUnderPostmaster)
		AddWaitEventToSet(ws->set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	ws->sock_pos = AddWaitEventToSet(ws->set, WL_SOCKET_READABLE, sock, NULL, NULL);
	ws->chan = chan;
	ws->sock = sock;
	ws->sock_ino = st.st_ino;
	ws->next = wait_sets;
	wait_sets = ws;
	return ws;
}

/*
 * Sleep until the socket is ready for what status asks, the latch is set or
 * the channel's deadline passes, then serve interrupts.  A cancel or a
 * terminate request raises its ERROR/FATAL here, outside any Rust frame.
 * While connecting, libpq may switch sockets (another host, another
 * address), so those waits use a one-off WaitLatchOrSocket.
 */
static void
netbuf_wait(NbChannel *chan, NbStatus status, bool streaming)
{
	int			events = WL_SOCKET_READABLE;
	long		timeout = nb_wait_timeout_ms(chan);

	if (status == NB_WAIT_WRITE)
		events |= WL_SOCKET_WRITEABLE;

	if (streaming)
	{
		NetbufWaitSet *ws = netbuf_wait_set(chan);
		WaitEvent	event;

		/* No system call unless the events change. */
		ModifyWaitEvent(ws->set, ws->sock_pos, events, NULL);
		if (WaitEventSetWait(ws->set, timeout, &event, 1, PG_WAIT_EXTENSION) == 1 &&
			(event.events & WL_LATCH_SET))
			ResetLatch(MyLatch);
	}
	else
	{
		int			rc;

		events |= WL_LATCH_SET | WL_EXIT_ON_PM_DEATH;
		if (timeout >= 0)
			events |= WL_TIMEOUT;
		rc = WaitLatchOrSocket(MyLatch, events, nb_socket(chan), timeout,
							   PG_WAIT_EXTENSION);
		if (rc & WL_LATCH_SET)
			ResetLatch(MyLatch);
	}
	CHECK_FOR_INTERRUPTS();
}

/* Wait and repeat until a step is no longer waiting. */
#define NETBUF_RUN(chan, status, step, streaming) \
	while (((status) = (step)) == NB_WAIT_READ || (status) == NB_WAIT_WRITE) \
		netbuf_wait((chan), (status), (streaming))

/* Raise a failed step's error; the set is made afresh if needed again. */
static void
netbuf_fail(NbChannel *chan, const NbError *err)
{
	netbuf_forget_wait_set(chan);
	netbuf_raise(err);
}

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
		NETBUF_RUN(chan, status, nb_connect_continue(chan, &err), false);
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
	NETBUF_RUN(CHANNEL(conn), status, nb_send(CHANNEL(conn), buffer, nbytes, &err), true);
	if (status != NB_DONE)
		netbuf_fail(CHANNEL(conn), &err);
}

void
netbuf_client_flush(NetbufConn *conn)
{
	NbStatus	status;
	NbError		err;

	NETBUF_RUN(CHANNEL(conn), status, nb_flush(CHANNEL(conn), &err), true);
	if (status != NB_DONE)
		netbuf_fail(CHANNEL(conn), &err);
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
			   nb_recv(CHANNEL(conn), &data, &nbytes, &err), true);

	if (status == NB_ERROR)
		netbuf_fail(CHANNEL(conn), &err);
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
	netbuf_forget_wait_set(CHANNEL(conn));
	nb_close(CHANNEL(conn));
	ReleaseExternalFD();
}
