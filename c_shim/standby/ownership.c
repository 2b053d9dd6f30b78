/*-------------------------------------------------------------------------
 *
 * ownership.c
 *	  The life of a standby's channel handle in PostgreSQL's error model:
 *	  who owns it, what an abort does to it, what is left once it is closed.
 *
 * - Ownership.  A channel opened while there is a CurrentResourceOwner
 *   belongs to it, as a temporary file or a DSM mapping does: it is closed
 *   when that owner is released, silently at abort and with a leak WARNING
 *   at commit.  netbuf_pin() makes it a session channel; one opened with no
 *   resource owner (a background worker's loop) is one from the start.
 *   From PostgreSQL 17 the owner tracks it itself (ResourceOwnerDesc);
 *   before, a release callback looks for the channels of the owner being
 *   released.
 * - No stale reply.  A call interrupted by an ERROR leaves its channel
 *   marked busy; an abort that finds a channel busy, or with requests in
 *   flight that were sent in the aborting (sub)transaction, resets it: the
 *   connection is closed with their replies, and the next send reconnects.
 * - Closed handles.  A handle whose owner closed it is kept, marked closed,
 *   so that a later call through a saved pointer is an ERROR, not a crash.
 *
 * The handle (NetbufConn) is private to this file: channel.c, which does
 * the waiting and calls the Rust core, sees it only through the functions
 * below, so every change to a handle's state happens here.
 *
 * IDENTIFICATION
 *	  c_shim/standby/ownership.c
 *
 *-------------------------------------------------------------------------
 */
#include "internal.h"

#include "access/xact.h"
#include "lib/ilist.h"
#include "storage/fd.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

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
	TimestampTz opened_at;		/* when netbuf_conn_attach took it */
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

#ifdef NETBUF_HAVE_RESOWNER_DESC
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

#ifdef NETBUF_HAVE_RESOWNER_DESC

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
#ifndef NETBUF_HAVE_RESOWNER_DESC
	RegisterResourceReleaseCallback(netbuf_resowner_callback, NULL);
#endif
	callbacks_registered = true;
}

/*
 * A handle for a channel about to be opened: everything that can fail
 * before the connection exists, so that netbuf_conn_attach cannot.  The
 * handle belongs to CurrentResourceOwner as it is now; undo with
 * netbuf_conn_discard if the connection fails.
 */
NetbufConn *
netbuf_conn_create(void)
{
	NetbufConn *conn;

	netbuf_register_callbacks();
	conn = MemoryContextAllocZero(TopMemoryContext, sizeof(NetbufConn));
	conn->owner = CurrentResourceOwner;
#ifdef NETBUF_HAVE_RESOWNER_DESC
	if (conn->owner != NULL)
		ResourceOwnerEnlarge(conn->owner);
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
	return conn;
}

/* The connection failed: give back what netbuf_conn_create took. */
void
netbuf_conn_discard(NetbufConn *conn)
{
	ReleaseExternalFD();
	pfree(conn);
}

/* The channel is connected: its owner holds it from now on.  Cannot fail. */
void
netbuf_conn_attach(NetbufConn *conn, NbChannel *chan)
{
	conn->magic = NETBUF_CONN_OPEN;
	conn->chan = chan;
	conn->send_subid = InvalidSubTransactionId;
	conn->opened_at = GetCurrentTimestamp();
	dlist_push_tail(&open_channels, &conn->node);
#ifdef NETBUF_HAVE_RESOWNER_DESC
	if (conn->owner != NULL)
		ResourceOwnerRemember(conn->owner, PointerGetDatum(conn), &netbuf_resowner_desc);
#endif
}

/*
 * Check a handle the caller passed and mark it busy for the call.  A handle
 * still busy from an earlier call was interrupted by an ERROR outside any
 * transaction (where no abort callback saw it): reset it first.
 */
NbChannel *
netbuf_call_begin(NetbufConn *conn)
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
void
netbuf_call_end(NetbufConn *conn, NbStatus status, const NbError *err)
{
	/* After NB_ERROR the Rust core has put the channel in a known state. */
	conn->busy = false;
	if (status == NB_ERROR)
		netbuf_raise(err);
}

/*
 * A send is about to queue a request: remember the (sub)transaction it
 * belongs to, so that an abort of that (sub)transaction resets the channel.
 */
void
netbuf_conn_note_send(NetbufConn *conn)
{
	conn->send_xact = xact_generation;
	conn->send_subid = GetCurrentSubTransactionId();
}

/* netbuf_pin: the channel belongs to the session from now on. */
void
netbuf_standby_pin(NetbufConn *conn)
{
	(void) netbuf_call_begin(conn);
#ifdef NETBUF_HAVE_RESOWNER_DESC
	if (conn->owner != NULL)
		ResourceOwnerForget(conn->owner, PointerGetDatum(conn), &netbuf_resowner_desc);
#endif
	conn->owner = NULL;
	conn->busy = false;
}

/* netbuf_disconnect: close the channel, or forget a handle its owner closed. */
void
netbuf_standby_disconnect(NetbufConn *conn)
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
	(void) netbuf_call_begin(conn);
#ifdef NETBUF_HAVE_RESOWNER_DESC
	if (conn->owner != NULL)
		ResourceOwnerForget(conn->owner, PointerGetDatum(conn), &netbuf_resowner_desc);
#endif
	netbuf_close_channel(conn, false);
}

/*
 * What the SQL functions (sql_api.c) see of a channel: its state, serving
 * backend and authentication (NbChannelInfo), and the socket to check for a
 * peer that went away, or PGINVALID_SOCKET.  A closed handle reads as a
 * broken channel.
 */
pgsocket
netbuf_conn_describe(NetbufConn *conn, NbChannelInfo *info)
{
	bool		open = (conn != NULL && conn->magic == NETBUF_CONN_OPEN);
	int			sock;

	nb_rust->describe(open ? conn->chan : NULL, info);
	sock = open ? nb_rust->socket(conn->chan) : -1;
	return sock < 0 ? PGINVALID_SOCKET : (pgsocket) sock;
}

/*
 * Every open channel of this backend, whoever opened it (netbuf.h or SQL),
 * oldest first: a List of NetbufConn * in CurrentMemoryContext.
 */
List *
netbuf_conn_list(void)
{
	List	   *conns = NIL;
	dlist_iter	iter;

	dlist_foreach(iter, &open_channels)
		conns = lappend(conns, dlist_container(NetbufConn, node, iter.cur));
	return conns;
}

/* What netbuf.channels() shows of an open handle besides NbChannelInfo. */
void
netbuf_conn_show(NetbufConn *conn, bool *pinned, TimestampTz *opened_at,
				 char *conninfo, int cap)
{
	*pinned = (conn->owner == NULL);
	*opened_at = conn->opened_at;
	nb_rust->channel_conninfo(conn->chan, conninfo, cap);
}
