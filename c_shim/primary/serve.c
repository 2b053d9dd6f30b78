/*-------------------------------------------------------------------------
 *
 * serve.c
 *	  CALL netbuf.serve(): the primary side of a channel.  The CALL turns
 *	  its backend into a COPY BOTH server that answers each message with
 *	  the handler registered for its first byte (handlers.c).
 *
 * Modelled on walsender.c: read with pq_getbyte_if_available, sleep on
 * FeBeWaitSet (latch and client socket) when nothing is buffered, serve
 * interrupts between messages, stop reading while too many replies wait to
 * be sent, and leave quietly when the client is gone.  Large messages go
 * past pqcomm (direct_io.c).
 *
 * Transactions: serve() ends the CALL's transaction before it starts
 * serving, as VACUUM does between tables, and runs each request that needs
 * one in a transaction of its own; between requests the backend holds no
 * transaction, lock or snapshot.  It starts one again before returning, for
 * exec_simple_query to commit.
 *
 * IDENTIFICATION
 *	  c_shim/primary/serve.c
 *
 *-------------------------------------------------------------------------
 */
#include "internal.h"

#include "access/xact.h"
#include "utils/portal.h"
#include "libpq/libpq.h"
#include "libpq/libpq-be.h"
#include "libpq/pqformat.h"
#include "miscadmin.h"
#include "port/pg_bswap.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "replication/walsender.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/wait_event.h"

/*
 * Sleep until the client socket is ready for socket_events or the latch is
 * set, then serve interrupts.
 */
/*
 * pg_stat_activity's state: 'active' while requests are being answered,
 * 'idle' while the loop waits for one.  Reported on a change only: a
 * pipeline of fast requests costs two reports per wake-up, not per message.
 */
static bool netbuf_reported_running = true;	/* the CALL started 'active' */

static void
netbuf_report_running(bool running)
{
	if (running == netbuf_reported_running)
		return;
	pgstat_report_activity(running ? STATE_RUNNING : STATE_IDLE, NULL);
	netbuf_serving_state(running);
	netbuf_reported_running = running;
}

static void
netbuf_serve_wait(int socket_events, uint32 wait_event_info)
{
	WaitEvent	event;

	ModifyWaitEvent(FeBeWaitSet, FeBeWaitSetSocketPos, socket_events, NULL);
	(void) WaitEventSetWait(FeBeWaitSet, -1, &event, 1, wait_event_info);
	if (event.events & WL_POSTMASTER_DEATH)
		ereport(FATAL,
				(errcode(ERRCODE_ADMIN_SHUTDOWN),
				 errmsg("terminating connection due to unexpected postmaster exit")));
	if (event.events & WL_LATCH_SET)
		ResetLatch(MyLatch);

	/*
	 * A termination must not try to send its message behind replies the
	 * client is not taking: that write would block for good (the FATAL has
	 * already cleared ProcDiePending, so ProcessClientWriteInterrupt could
	 * not end it).  Leave without a message, as walsender does.
	 */
	if (ProcDiePending && pq_is_send_pending())
		whereToSendOutput = DestNone;
	CHECK_FOR_INTERRUPTS();
}

/*
 * Replies queued but not yet sent, at most: past this the loop stops
 * reading requests until the client has taken them, so that a client that
 * sends without receiving is held back by TCP instead of growing pqcomm's
 * send buffer (which pq_putmessage_noblock enlarges without limit).
 */
#define NETBUF_MAX_UNSENT (1024 * 1024)

/* Bytes queued since pqcomm's send buffer was last empty. */
static size_t netbuf_unsent = 0;

/* Queue one reply; wait for the client to take replies if too many wait. */
static void
netbuf_queue_reply(StringInfo reply)
{
	if (!pq_is_send_pending())
		netbuf_unsent = 0;
	pq_putmessage_noblock('d', reply->data, reply->len);
	netbuf_unsent += (size_t) reply->len + 5;

	while (netbuf_unsent > NETBUF_MAX_UNSENT)
	{
		if (pq_flush_if_writable() != 0)
			netbuf_client_gone();
		if (!pq_is_send_pending())
		{
			netbuf_unsent = 0;
			break;
		}
		netbuf_serve_wait(WL_SOCKET_WRITEABLE, netbuf_wait_event(NETBUF_WAIT_SERVE_SEND));
	}
}

/*
 * Answer one CopyData message from the client: run its handler (in a
 * transaction of its own unless the handler needs none), commit, then send
 * the reply, so that the client never sees a reply whose work was rolled
 * back.  An ERROR aborts the request's transaction and ends the CALL; the
 * client reads it from netbuf_recv and its next send opens a new stream.
 */
static void
netbuf_dispatch(StringInfo request, StringInfo reply, int max_reply_size,
				MemoryContext message_context)
{
	const NetbufOp *entry = netbuf_lookup_op(request);
	unsigned char op = (unsigned char) request->data[0];
	bool		transaction = (entry->flags & NETBUF_HANDLER_NO_TRANSACTION) == 0;

	netbuf_serving_request(op, request->len);
	netbuf_report_running(true);
	if (transaction)
	{
		/*
		 * Such a handler may take a while: let the replies queued before it
		 * go now rather than after it (without waiting for the socket).
		 */
		if (pq_flush_if_writable() != 0)
			netbuf_client_gone();
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		/* 17+ arms transaction_timeout here; requests are not sessions' transactions. */
		netbuf_disarm_timeouts();
		PushActiveSnapshot(GetTransactionSnapshot());
	}
	MemoryContextSwitchTo(message_context);

	resetStringInfo(reply);
	entry->handler(request->data, request->len, reply);

	if (reply->len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("netbuf: the handler for op code 0x%02x produced an empty reply", op),
				 errdetail("libpq cannot deliver an empty CopyData message; the client would wait forever.")));

	/* The client would have to allocate it in full before refusing it. */
	if (reply->len > max_reply_size)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("netbuf: reply of %d bytes to op code 0x%02x exceeds the client's limit of %d bytes",
						reply->len, op, max_reply_size),
				 errhint("Raise netbuf.max_message_size on the standby (ConnectOptions::max_message_size in the Rust API).")));

	if (transaction)
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	MemoryContextSwitchTo(message_context);

	if (reply->len >= NB_DIRECT_IO_MIN_SIZE)
		netbuf_send_large_reply(reply);
	else
		/* Queued, not flushed: the loop flushes once its input is drained. */
		netbuf_queue_reply(reply);
	netbuf_serving_reply(reply->len);
}

/*
 * Read the body of the message whose type byte was just read.  Like
 * pq_getmessage, but a message over netbuf.max_message_size is read past
 * (keeping protocol sync) and refused with an ERROR the client can read,
 * before any memory is allocated for it.
 *
 * An ERROR between pq_startmsgread and the end of the message loses
 * protocol sync, so cancels are held while the body arrives (as
 * copyfromparse.c does).  Termination still works: it is FATAL.
 */
static void
netbuf_read_message(StringInfo request)
{
	uint32		netlen;
	int64		len;

	HOLD_CANCEL_INTERRUPTS();
	if (pq_getbytes((char *) &netlen, 4) == EOF)
		netbuf_client_gone();
	len = (int64) pg_ntoh32(netlen) - 4;
	if (len < 0)
		ereport(FATAL,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("netbuf: invalid message length %lld", (long long) len + 4)));

	if (len > netbuf_max_message_size)
	{
		char		discard[8192];

		for (int64 left = len; left > 0; left -= Min(left, (int64) sizeof(discard)))
			if (pq_getbytes(discard, Min(left, (int64) sizeof(discard))) == EOF)
				netbuf_client_gone();
		pq_endmsgread();
		RESUME_CANCEL_INTERRUPTS();
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("netbuf: message of %lld bytes exceeds netbuf.max_message_size (%d bytes)",
						(long long) len, netbuf_max_message_size)));
	}

	enlargeStringInfo(request, (int) len);
	if (pq_getbytes(request->data, len) == EOF)
		netbuf_client_gone();
	request->len = (int) len;
	request->data[len] = '\0';
	pq_endmsgread();
	RESUME_CANCEL_INTERRUPTS();
}

/* Buffers larger than this are freed after use rather than kept. */
#define NETBUF_KEEP_BUFFER (8 * 1024 * 1024)

static void
netbuf_reuse_buffer(StringInfo buf)
{
	if (buf->maxlen > NETBUF_KEEP_BUFFER)
	{
		MemoryContext context = GetMemoryChunkContext(buf->data);
		MemoryContext old = MemoryContextSwitchTo(context);

		pfree(buf->data);
		initStringInfo(buf);
		MemoryContextSwitchTo(old);
	}
	else
		resetStringInfo(buf);
}

/* Serve until the client sends CopyDone (return) or goes away (exit). */
static void
netbuf_serve_loop(MemoryContext message_context, int max_reply_size)
{
	StringInfoData request;
	StringInfoData reply;
	bool		large_stream = false;

	/* Both in the serve call's context, the parent of message_context. */
	initStringInfo(&request);
	initStringInfo(&reply);

	for (;;)
	{
		unsigned char msgtype = 'd';
		int			r;

		CHECK_FOR_INTERRUPTS();

		/*
		 * The request and reply buffers live in the parent of
		 * message_context and are reused, so a stream of large messages does
		 * not allocate (and fault in) a fresh buffer each time; one that grew
		 * past NETBUF_KEEP_BUFFER is given back.  What a handler allocates
		 * goes away with the reset.
		 */
		MemoryContextReset(message_context);
		netbuf_reuse_buffer(&request);
		netbuf_reuse_buffer(&reply);

		/* After a large request, the next may skip pqcomm's buffer. */
		if (!(large_stream && netbuf_read_large_request(&request)))
		{
			pq_startmsgread();
			r = pq_getbyte_if_available(&msgtype);
			if (r < 0)
				netbuf_client_gone();
			if (r == 0)
			{
				/* Input drained: send what is queued, then sleep. */
				pq_endmsgread();
				netbuf_report_running(false);
				if (pq_flush_if_writable() != 0)
					netbuf_client_gone();
				if (pq_is_send_pending())
					netbuf_serve_wait(WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE,
									  netbuf_wait_event(NETBUF_WAIT_SERVE_SEND));
				else
					netbuf_serve_wait(WL_SOCKET_READABLE, netbuf_wait_event(NETBUF_WAIT_SERVE_RECV));
				continue;
			}
			netbuf_read_message(&request);
		}
		large_stream = (msgtype == 'd' && request.len >= NB_DIRECT_IO_MIN_SIZE);

		switch (msgtype)
		{
			case 'd':			/* CopyData */
				{
					MemoryContext old = CurrentMemoryContext;

					netbuf_dispatch(&request, &reply, max_reply_size, message_context);
					MemoryContextSwitchTo(old);
				}
				break;
			case 'c':			/* CopyDone: end the stream, the CALL returns */
				pq_putemptymessage('c');
				if (pq_flush() != 0)
					netbuf_client_gone();
				return;
			case 'f':			/* CopyFail */
				ereport(ERROR,
						(errcode(ERRCODE_QUERY_CANCELED),
						 errmsg("netbuf: the client ended the stream: %s",
								pq_getmsgstring(&request))));
				break;
			case 'H':			/* Flush and Sync: nothing to do in COPY */
			case 'S':
				break;
			case 'X':			/* Terminate */
				netbuf_client_gone();
				break;
			default:
				ereport(FATAL,
						(errcode(ERRCODE_PROTOCOL_VIOLATION),
						 errmsg("netbuf: unexpected message type 0x%02x during COPY BOTH",
								msgtype)));
		}
	}
}

/*
 * A channel idles for days, so a client that vanished without a FIN or RST
 * must be noticed by the kernel: boundary.h's silent-peer policy with
 * netbuf.peer_timeout, the same the Rust core gives its own connections.
 * (The pq_set* functions skip Unix-domain sockets.)
 */
static void
netbuf_watch_silent_peer(void)
{
	int			idle_s = Max(1, netbuf_peer_timeout / (1000 * NB_PEER_KEEPALIVE_IDLE_DIVISOR));
	int			interval_s = Max(1, netbuf_peer_timeout / (1000 * NB_PEER_KEEPALIVE_INTERVAL_DIVISOR));

	if (netbuf_peer_timeout == 0 || MyProcPort == NULL)
		return;
	(void) pq_setkeepalivesidle(idle_s, MyProcPort);
	(void) pq_setkeepalivesinterval(interval_s, MyProcPort);
	(void) pq_setkeepalivescount(NB_PEER_KEEPALIVE_COUNT, MyProcPort);
	(void) pq_settcpusertimeout(netbuf_peer_timeout, MyProcPort);
}

/* serve(max_reply_size): NULL (the default) when the client has no limit. */
static int
netbuf_max_reply_size_arg(FunctionCallInfo fcinfo)
{
	int			max_reply_size;

	if (PG_NARGS() < 1 || PG_ARGISNULL(0))
		return PQ_LARGE_MESSAGE_LIMIT;
	max_reply_size = PG_GETARG_INT32(0);
	if (max_reply_size < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("netbuf: max_reply_size must be positive, not %d", max_reply_size)));
	return max_reply_size;
}

Datum
netbuf_shim_serve(PG_FUNCTION_ARGS)
{
	CallContext *call = (CallContext *) fcinfo->context;
	MemoryContext caller_context = CurrentMemoryContext;	/* the portal's */
	volatile MemoryContext serve_context = NULL;
	MemoryContext message_context;
	StringInfoData start;
	volatile int max_reply_size = netbuf_max_reply_size_arg(fcinfo);

	/* Non-atomic, so that the CALL's portal survives the commit below. */
	if (call == NULL || !IsA(call, CallContext) || call->atomic)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
				 errmsg("netbuf.serve() must be run by a top-level CALL outside a transaction block"),
				 errhint("netbuf_connect runs CALL netbuf.serve() itself.")));
	if (whereToSendOutput != DestRemote || am_walsender)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("netbuf.serve() needs an ordinary client connection")));

	netbuf_watch_silent_peer();

	/*
	 * netbuf.serving's row (serving_stats.c): filled in the CALL's
	 * transaction (it looks the role up), cleared however the CALL ends.
	 */
	netbuf_serving_call_begin();
	PG_TRY();
	{
		/*
		 * A channel lives as long as the standby wants it: end the CALL's
		 * transaction now so that it holds no snapshot (no backend_xmin),
		 * lock or xid while it waits.  The portal's snapshot goes first, as
		 * SPI_commit does it for a procedure's COMMIT (the CALL is
		 * non-atomic, checked above, so its portal survives the commit).
		 */
		ForgetPortalSnapshots();
		CommitTransactionCommand();
		netbuf_reported_running = true; /* exec_simple_query reported the CALL */
		netbuf_report_running(false);

		/*
		 * statement_timeout (and, 17+, transaction_timeout) would end a
		 * channel that lives longer than them: see pg_compat.h.
		 */
		netbuf_disarm_timeouts();

		/* CopyBothResponse: text format, no columns. */
		pq_beginmessage(&start, 'W');
		pq_sendbyte(&start, 0);
		pq_sendint16(&start, 0);
		pq_endmessage(&start);
		if (pq_flush() != 0)
			netbuf_client_gone();

		/*
		 * Under TopMemoryContext: the CALL's own contexts do not outlive
		 * commits.
		 */
		serve_context = AllocSetContextCreate(TopMemoryContext,
											  "netbuf serve",
											  ALLOCSET_DEFAULT_SIZES);
		message_context = AllocSetContextCreate(serve_context,
												"netbuf message",
												ALLOCSET_DEFAULT_SIZES);
		MemoryContextSwitchTo(serve_context);
		netbuf_serve_loop(message_context, max_reply_size);
	}
	PG_CATCH();
	{
		if (serve_context != NULL)
			MemoryContextDelete(serve_context);
		netbuf_serving_call_end(false);
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextDelete(serve_context);
	netbuf_serving_call_end(true);

	/* exec_simple_query commits the CALL's transaction: give it one. */
	StartTransactionCommand();
	netbuf_report_running(true);
	MemoryContextSwitchTo(caller_context);
	PG_RETURN_VOID();
}
