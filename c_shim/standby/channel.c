/*
 * client.c -- the standby side of netbuf: netbuf_connect / send / recv /
 * disconnect / pin for backend code.
 *
 * The Rust core (src/channel.rs) does the libpq work without ever blocking;
 * this file does what only backend code may do: sleep on the latch and the
 * socket, serve interrupts, account for the file descriptor, tie each
 * channel to PostgreSQL's error model and ereport.  libpq's blocking calls
 * (PQgetCopyData with async=0, a blocking PQputCopyData) would ignore
 * pg_terminate_backend, so none is used here.
 *
 * The error model, in short (netbuf.h has the user's view):
 * - Ownership.  A channel opened while there is a CurrentResourceOwner
 *   belongs to it, as a temporary file or a DSM mapping does: it is closed
 *   when that owner is released, silently at abort and with a leak WARNING
 *   at commit.  netbuf_pin() makes it a session channel; one opened with no
 *   resource owner (a background worker's loop) is one from the start.
 * - No stale reply.  A call interrupted by an ERROR leaves its channel
 *   marked busy; an abort that finds a channel busy, or with requests in
 *   flight that were sent in the aborting (sub)transaction, resets it: the
 *   connection is closed with their replies, and the next send reconnects.
 */
#include "internal.h"

#include "access/xact.h"
#include "lib/ilist.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/wait_event.h"

#define NETBUF_CONN_OPEN	0x4E42434FU /* "NBCO" */
#define NETBUF_CONN_CLOSED	0x4E424343U /* "NBCC" */

struct NetbufConn
{
	uint32		magic;			/* NETBUF_CONN_OPEN, or _CLOSED by its owner */
	NbChannel  *chan;
	ResourceOwner owner;		/* NULL: a session channel */
	bool		busy;			/* a call runs, or an ERROR escaped one */
	uint64		send_xact;		/* transaction of the last send (see below) */
	SubTransactionId send_subid;	/* subtransaction of the last send */
	dlist_node	node;			/* in open_channels or closed_handles */
};

/* Every open channel of this backend. */
static dlist_head open_channels = DLIST_STATIC_INIT(open_channels);

/*
 * Handles their owner closed are kept, marked closed, so that code that
 * forgot netbuf_pin and calls again through a saved pointer gets an ERROR
 * rather than a crash.  Only the newest few are kept: memory stays bounded.
 */
#define NETBUF_KEEP_CLOSED_HANDLES 1024
static dlist_head closed_handles = DLIST_STATIC_INIT(closed_handles);
static int	n_closed_handles = 0;

static bool callbacks_registered = false;

/* Counts ended transactions, so that a send knows which one it belonged to. */
static uint64 xact_generation = 0;

#if PG_VERSION_NUM >= 170000
static void netbuf_resowner_release(Datum res);
static char *netbuf_resowner_print(Datum res);

static const ResourceOwnerDesc netbuf_resowner_desc = {
	.name = "netbuf channel",
	.release_phase = RESOURCE_RELEASE_AFTER_LOCKS,
	.release_priority = RELEASE_PRIO_LAST,
	.ReleaseResource = netbuf_resowner_release,
	.DebugPrint = netbuf_resowner_print,
};
#endif

/* Close the channel and forget the handle (or keep it, marked closed). */
static void
netbuf_close_channel(NetbufConn *conn, bool keep_handle)
{
	dlist_delete(&conn->node);
	nb_rust->close(conn->chan);
	ReleaseExternalFD();
	conn->chan = NULL;
	conn->owner = NULL;
	if (!keep_handle)
	{
		conn->magic = 0;
		pfree(conn);
		return;
	}
	conn->magic = NETBUF_CONN_CLOSED;
	dlist_push_tail(&closed_handles, &conn->node);
	if (++n_closed_handles > NETBUF_KEEP_CLOSED_HANDLES)
	{
		NetbufConn *oldest = dlist_container(NetbufConn, node,
											 dlist_pop_head_node(&closed_handles));

		oldest->magic = 0;
		pfree(oldest);
		n_closed_handles--;
	}
}

/* Discard what is in flight on conn (see the file header). */
static void
netbuf_reset_channel(NetbufConn *conn, const char *why)
{
	nb_rust->reset(conn->chan, why);
	conn->busy = false;
}

#if PG_VERSION_NUM >= 170000

/* The owner is being released: its WARNING (at commit) is resowner.c's. */
static void
netbuf_resowner_release(Datum res)
{
	netbuf_close_channel((NetbufConn *) DatumGetPointer(res), true);
}

static char *
netbuf_resowner_print(Datum res)
{
	return pstrdup("netbuf channel (call netbuf_disconnect, or netbuf_pin to keep it for the session)");
}

#else

/* Called for every resource owner released; CurrentResourceOwner is it. */
static void
netbuf_resowner_callback(ResourceReleasePhase phase, bool isCommit,
						 bool isTopLevel, void *arg)
{
	dlist_mutable_iter iter;

	if (phase != RESOURCE_RELEASE_AFTER_LOCKS)
		return;
	dlist_foreach_modify(iter, &open_channels)
	{
		NetbufConn *conn = dlist_container(NetbufConn, node, iter.cur);

		if (conn->owner == NULL || conn->owner != CurrentResourceOwner)
			continue;
		if (isCommit)
			ereport(WARNING,
					(errmsg("netbuf: channel leak: a channel was not closed"),
					 errhint("Call netbuf_disconnect, or netbuf_pin to keep it for the session.")));
		netbuf_close_channel(conn, true);
	}
}

#endif

/* At (sub)transaction abort: reset channels whose replies nobody will read. */
static void
netbuf_abort_channels(SubTransactionId aborting_subid)
{
	dlist_iter	iter;

	dlist_foreach(iter, &open_channels)
	{
		NetbufConn *conn = dlist_container(NetbufConn, node, iter.cur);

		/*
		 * Subtransaction ids grow within a transaction, and any begun after
		 * the aborting one is its descendant, so >= means "sent in it".
		 */
		bool		sent_here = (conn->send_xact == xact_generation &&
								 (aborting_subid == InvalidSubTransactionId ||
								  conn->send_subid >= aborting_subid));

		if (conn->busy)
			netbuf_reset_channel(conn, "an ERROR interrupted a call on it");
		else if (sent_here && nb_rust->in_flight(conn->chan) > 0)
			netbuf_reset_channel(conn, "an ERROR aborted the transaction that sent them");
	}
}

static void
netbuf_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			netbuf_abort_channels(InvalidSubTransactionId);
			xact_generation++;
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			xact_generation++;
			break;
		default:
			break;
	}
}

static void
netbuf_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		netbuf_abort_channels(mySubid);
}

static void
netbuf_register_callbacks(void)
{
	if (callbacks_registered)
		return;
	RegisterXactCallback(netbuf_xact_callback, NULL);
	RegisterSubXactCallback(netbuf_subxact_callback, NULL);
#if PG_VERSION_NUM < 170000
	RegisterResourceReleaseCallback(netbuf_resowner_callback, NULL);
#endif
	callbacks_registered = true;
}

/*
 * Check a handle the caller passed and mark it busy for the call.  A handle
 * still busy from an earlier call was interrupted by an ERROR outside any
 * transaction (where no abort callback saw it): reset it first.
 */
static NbChannel *
netbuf_begin_call(NetbufConn *conn)
{
	if (conn == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("netbuf: the connection is NULL (netbuf_connect did not succeed?)")));
	if (conn->magic == NETBUF_CONN_CLOSED)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_DOES_NOT_EXIST),
				 errmsg("netbuf: the channel was closed when the statement or transaction that opened it ended"),
				 errhint("Call netbuf_pin after netbuf_connect to keep a channel for the session.")));
	if (conn->magic != NETBUF_CONN_OPEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("netbuf: not a netbuf channel (closed by netbuf_disconnect?)")));
	if (conn->busy)
		netbuf_reset_channel(conn, "an ERROR interrupted a call on it");
	conn->busy = true;
	return conn->chan;
}

/* The call ended without leaving anything behind; raise err if it failed. */
static void
netbuf_end_call(NetbufConn *conn, NbStatus status, const NbError *err)
{
	/* After NB_ERROR the Rust core has put the channel in a known state. */
	conn->busy = false;
	if (status == NB_ERROR)
		netbuf_raise(err);
}

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
netbuf_client_connect(const char *conninfo)
{
	NetbufConn *conn;
	NbChannel  *chan;
	NbStatus	status;
	NbError		err;
	ResourceOwner owner = CurrentResourceOwner;

	if (conninfo == NULL || conninfo[0] == '\0')
	{
		if (PrimaryConnInfo == NULL || PrimaryConnInfo[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("netbuf: no conninfo given and primary_conninfo is not set"),
					 errhint("Pass a connection string to netbuf_connect, or call it on a standby.")));
		conninfo = PrimaryConnInfo;
	}

	netbuf_register_callbacks();
	conn = MemoryContextAllocZero(TopMemoryContext, sizeof(NetbufConn));
#if PG_VERSION_NUM >= 170000
	if (owner != NULL)
		ResourceOwnerEnlarge(owner);
#endif

	/* The socket counts against max_files_per_process, as in libpqsrv_connect. */
	if (!AcquireExternalFD())
	{
		pfree(conn);
		ereport(ERROR,
				(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
				 errmsg("netbuf: could not connect to the primary"),
				 errdetail("There are too many open files on the local server.")));
	}

	chan = nb_rust->connect_start(conninfo, &err);
	if (chan == NULL)
	{
		ReleaseExternalFD();
		pfree(conn);
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
		ReleaseExternalFD();
		pfree(conn);
		PG_RE_THROW();
	}
	PG_END_TRY();

	/* From here to the end nothing can fail: the owner now holds it. */
	conn->magic = NETBUF_CONN_OPEN;
	conn->chan = chan;
	conn->owner = owner;
	conn->send_subid = InvalidSubTransactionId;
	dlist_push_tail(&open_channels, &conn->node);
#if PG_VERSION_NUM >= 170000
	if (owner != NULL)
		ResourceOwnerRemember(owner, PointerGetDatum(conn), &netbuf_resowner_desc);
#endif
	return conn;
}

void
netbuf_client_pin(NetbufConn *conn)
{
	(void) netbuf_begin_call(conn);
#if PG_VERSION_NUM >= 170000
	if (conn->owner != NULL)
		ResourceOwnerForget(conn->owner, PointerGetDatum(conn), &netbuf_resowner_desc);
#endif
	conn->owner = NULL;
	conn->busy = false;
}

void
netbuf_client_queue(NetbufConn *conn, const char *buffer, int nbytes)
{
	NbChannel  *chan = netbuf_begin_call(conn);
	NbStatus	status;
	NbError		err;

	conn->send_xact = xact_generation;
	conn->send_subid = GetCurrentSubTransactionId();
	/* send checks buffer and nbytes and says what is wrong. */
	NETBUF_RUN(chan, status, nb_rust->send(chan, buffer, nbytes, &err), NETBUF_WAIT_SEND);
	netbuf_end_call(conn, status, &err);
}

void
netbuf_client_flush(NetbufConn *conn)
{
	NbChannel  *chan = netbuf_begin_call(conn);
	NbStatus	status;
	NbError		err;

	NETBUF_RUN(chan, status, nb_rust->flush(chan, &err), NETBUF_WAIT_SEND);
	netbuf_end_call(conn, status, &err);
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
	NbChannel  *chan;
	NbStatus	status;
	NbError		err;
	const char *data = NULL;
	int			nbytes = 0;

	if (buffer == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("netbuf: netbuf_recv needs a place to store the buffer pointer, got NULL")));

	chan = netbuf_begin_call(conn);
	NETBUF_RUN(chan, status, nb_rust->recv(chan, &data, &nbytes, &err), NETBUF_WAIT_RECV);
	netbuf_end_call(conn, status, &err);

	if (wait_fd != NULL)
		*wait_fd = nb_rust->socket(chan);
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
	if (conn->magic == NETBUF_CONN_CLOSED)
	{
		/* Its owner closed it already; the handle goes now. */
		dlist_delete(&conn->node);
		n_closed_handles--;
		conn->magic = 0;
		pfree(conn);
		return;
	}
	(void) netbuf_begin_call(conn);
#if PG_VERSION_NUM >= 170000
	if (conn->owner != NULL)
		ResourceOwnerForget(conn->owner, PointerGetDatum(conn), &netbuf_resowner_desc);
#endif
	netbuf_close_channel(conn, false);
}
