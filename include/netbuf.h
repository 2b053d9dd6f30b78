/*-------------------------------------------------------------------------
 *
 * netbuf.h
 *	  A private channel between PostgreSQL backends over libpq COPY BOTH.
 *
 * Backend code (an extension or a patched core) includes this header after
 * postgres.h, loads the library at run time and calls the functions below:
 *
 *		load_file("libnetbuf", false);
 *		conn = netbuf_connect(NULL);			(NULL: this standby's primary_conninfo)
 *		netbuf_send(conn, buf.data, buf.len);
 *		len = netbuf_recv(conn, &reply, &fd);
 *
 * There is no link-time dependency on libnetbuf: the library publishes a
 * table of functions in the rendezvous variable "netbuf_functions" when it
 * is loaded, and the inline wrappers here call through it.
 *
 * Every function reports failure with ereport(ERROR); every wait inside
 * them sleeps on the latch and the socket and serves interrupts, so
 * pg_cancel_backend, pg_terminate_backend and shutdowns work as usual.
 *
 * Lifetime.  A channel belongs to the resource owner that is current when
 * netbuf_connect opens it (the statement, or the (sub)transaction), as a
 * temporary file or a DSM mapping does: when that owner is released the
 * channel is closed -- silently after an ERROR, with a leak WARNING at
 * commit if netbuf_disconnect was not called.  So an ERROR between
 * netbuf_connect and netbuf_disconnect leaks nothing.  To keep a channel
 * for the session (in a static variable), call netbuf_pin after
 * netbuf_connect.  A channel opened with no resource owner (a background
 * worker's main loop) lives for the session without pinning.  A call
 * through the handle of a channel its owner closed raises an ERROR.
 *
 * Errors and replies.  Replies come in request order, and no call ever
 * returns a reply meant for an earlier request: when an ERROR (a cancel,
 * statement_timeout, an elog in your code between netbuf_send and
 * netbuf_recv) aborts the (sub)transaction that sent requests whose replies
 * were not received, or interrupts a netbuf call, the channel is reset --
 * its connection closed, those replies discarded -- and the next
 * netbuf_send reconnects; a netbuf_recv before that raises an ERROR.  An
 * ERROR the primary reports for a request ends that stream cleanly: the
 * requests queued after it are dropped by the primary, and the next
 * netbuf_send re-opens the stream on the same connection.  Outside any
 * transaction netbuf cannot see an ERROR of your own code: call
 * netbuf_disconnect in your error handler.
 *
 * Back-pressure.  The primary stops reading requests while the replies it
 * has not been able to send exceed a bound, so a client that queues without
 * receiving is slowed down by TCP rather than growing the serving backend.
 *
 *-------------------------------------------------------------------------
 */
#ifndef NETBUF_H
#define NETBUF_H

#include "fmgr.h"
#include "lib/stringinfo.h"

/*
 * The version of NetbufFunctions.  The table only grows: a library of a
 * later version serves code built for an earlier one.  2 added netbuf_pin
 * and netbuf_register_handler_ext.
 */
#define NETBUF_ABI_VERSION	2
#define NETBUF_RENDEZVOUS	"netbuf_functions"

/* A channel to the primary; opaque. */
typedef struct NetbufConn NetbufConn;

/*
 * A handler for one op code, run in the primary's serving backend.  request
 * is the whole message (request[0] is the op code), nbytes >= 1.  Append
 * the reply to reply (it starts empty).  Every request must get a non-empty
 * reply: libpq cannot carry an empty CopyData message, so an empty reply is
 * turned into an error for the client rather than a wait that never ends.
 * To refuse a request, ereport(ERROR): the client's netbuf_recv raises it,
 * the request's transaction is rolled back and the channel goes on.
 * Memory allocated in CurrentMemoryContext is freed after each message.
 *
 * Each request runs in a transaction of its own, started before the
 * handler (with a snapshot) and committed once the reply is queued; between
 * requests a serving backend holds no transaction, lock or snapshot.  A
 * handler that touches no database state can say so with
 * NETBUF_HANDLER_NO_TRANSACTION and skip that cost.
 */
typedef void (*NetbufHandler) (const char *request, int nbytes, StringInfo reply);

/* Flags of netbuf_register_handler_ext. */
#define NETBUF_HANDLER_NO_TRANSACTION	0x01	/* run outside any transaction */

typedef struct NetbufFunctions
{
	int			abi_version;	/* NETBUF_ABI_VERSION */

	/* The standby side (any backend that opens a channel). */
	NetbufConn *(*connect) (const char *conninfo);
	void		(*send) (NetbufConn *conn, const char *buffer, int nbytes);
	int			(*recv) (NetbufConn *conn, char **buffer, pgsocket *wait_fd);
	void		(*disconnect) (NetbufConn *conn);
	void		(*queue) (NetbufConn *conn, const char *buffer, int nbytes);
	void		(*flush) (NetbufConn *conn);

	/* The primary side (the backend running netbuf.serve()). */
	void		(*register_handler) (unsigned char op, NetbufHandler handler);

	/* Since NETBUF_ABI_VERSION 2. */
	void		(*pin) (NetbufConn *conn);
	void		(*register_handler_ext) (unsigned char op, NetbufHandler handler, int flags);
} NetbufFunctions;

/* The table published by libnetbuf; ERROR if the library is not loaded. */
static inline const NetbufFunctions *
netbuf_functions(void)
{
	static const NetbufFunctions *functions = NULL;

	if (functions == NULL)
	{
		const NetbufFunctions *published =
			*(const NetbufFunctions **) find_rendezvous_variable(NETBUF_RENDEZVOUS);

		if (published == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("netbuf: libnetbuf is not loaded"),
					 errhint("Call load_file(\"libnetbuf\", false) before the first netbuf call.")));
		if (published->abi_version < NETBUF_ABI_VERSION)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("netbuf: libnetbuf has ABI version %d, this code was built for %d",
							published->abi_version, NETBUF_ABI_VERSION),
					 errhint("Rebuild this module against the installed netbuf.h.")));
		functions = published;
	}
	return functions;
}

/*
 * Open a channel: connect with the session's search_path secured
 * (pg_catalog,pg_temp, through the startup packet) and run
 * CALL netbuf.serve() on the primary.  conninfo is a libpq connection
 * string or URI; NULL or "" means this server's primary_conninfo.  Without
 * a dbname it connects to database "postgres".  On failure: ERROR with
 * libpq's or the primary's message (never a password).
 */
static inline NetbufConn *
netbuf_connect(const char *conninfo)
{
	return netbuf_functions()->connect(conninfo);
}

/*
 * Send one message (nbytes >= 1; buffer[0] is the op code) and flush it
 * before returning.
 */
static inline void
netbuf_send(NetbufConn *conn, const char *buffer, int nbytes)
{
	netbuf_functions()->send(conn, buffer, nbytes);
}

/*
 * Wait for the next message from the primary and return its length, with
 * *buffer pointing at it; the buffer stays valid until the next netbuf_recv
 * on conn or until the channel is closed (a reconnect inside netbuf_send
 * keeps it, so a reply can be sent on as it is).  Returns -1 when the primary ended the
 * stream.  An error reported by the primary (an unknown op code, a
 * malformed request, a handler's ERROR) is raised here with the primary's
 * SQLSTATE; the channel re-opens its stream on the next netbuf_send.
 * If wait_fd is not NULL, *wait_fd is set to the channel's socket.
 */
static inline int
netbuf_recv(NetbufConn *conn, char **buffer, pgsocket *wait_fd)
{
	return netbuf_functions()->recv(conn, buffer, wait_fd);
}

/*
 * Pipelining: queue a message without waiting for the network (libpq sends
 * what it can), then netbuf_flush once, then netbuf_recv the replies, which
 * come in request order.  netbuf_recv also flushes what is still queued.
 */
static inline void
netbuf_queue(NetbufConn *conn, const char *buffer, int nbytes)
{
	netbuf_functions()->queue(conn, buffer, nbytes);
}

/* Send everything queued; returns when it is all written to the socket. */
static inline void
netbuf_flush(NetbufConn *conn)
{
	netbuf_functions()->flush(conn);
}

/*
 * Keep the channel for the session: it no longer belongs to the resource
 * owner that was current at netbuf_connect (see Lifetime above).
 */
static inline void
netbuf_pin(NetbufConn *conn)
{
	netbuf_functions()->pin(conn);
}

/* Close the channel; the primary's serving backend exits. */
static inline void
netbuf_disconnect(NetbufConn *conn)
{
	netbuf_functions()->disconnect(conn);
}

/*
 * On the primary: serve requests whose first byte is op with handler, in
 * this backend.  Call it from the _PG_init of a module loaded into the
 * serving backends (session_preload_libraries or shared_preload_libraries),
 * after load_file("libnetbuf", false).  ERROR if another handler has op.
 */
static inline void
netbuf_register_handler(unsigned char op, NetbufHandler handler)
{
	netbuf_functions()->register_handler(op, handler);
}

/* netbuf_register_handler with NETBUF_HANDLER_* flags. */
static inline void
netbuf_register_handler_ext(unsigned char op, NetbufHandler handler, int flags)
{
	netbuf_functions()->register_handler_ext(op, handler, flags);
}

#endif							/* NETBUF_H */
