/*
 * serve.c -- the primary side of netbuf: CALL netbuf.serve() turns its
 * backend into a COPY BOTH server and answers each message with the
 * handler registered for its first byte.
 *
 * Modelled on walsender.c: read with pq_getbyte_if_available, sleep on
 * FeBeWaitSet (latch and client socket) when nothing is buffered, serve
 * interrupts between messages, stop reading while too many replies wait to
 * be sent, and leave quietly when the client is gone.
 *
 * Transactions: serve() ends the CALL's transaction before it starts
 * serving, as VACUUM does between tables, and runs each request that needs
 * one in a transaction of its own; between requests the backend holds no
 * transaction, lock or snapshot.  It starts one again before returning, for
 * exec_simple_query to commit.
 */
#include "internal.h"

#include <ctype.h>
#include <sys/socket.h>

#include "access/xact.h"
#include "executor/spi.h"
#include "libpq/libpq.h"
#include "libpq/libpq-be.h"
#include "libpq/pqformat.h"
#include "miscadmin.h"
#include "port/pg_bswap.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "replication/walsender.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/wait_event.h"

/*
 * GUC netbuf.max_message_size: the largest request the primary accepts, and
 * on the standby the largest reply its channels accept.
 */
static int	netbuf_max_message_size = 64 * 1024 * 1024;

/*
 * GUC netbuf.peer_timeout: how long a client that went silent (a network
 * partition: no FIN, no RST) may keep its serving backend, through TCP
 * keepalives and TCP_USER_TIMEOUT on the channel's socket.
 */
static int	netbuf_peer_timeout = 30 * 1000;

/* One handler per op code; the built-ins register like everyone else. */
typedef struct NetbufOp
{
	NetbufHandler handler;
	int			flags;			/* NETBUF_HANDLER_* */
} NetbufOp;

static NetbufOp netbuf_ops[256];

void
netbuf_serve_register_handler_ext(unsigned char op, NetbufHandler handler, int flags)
{
	if (handler == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("netbuf: cannot register a NULL handler for op code 0x%02x", op)));
	if ((flags & ~NETBUF_HANDLER_NO_TRANSACTION) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("netbuf: unknown handler flags 0x%x for op code 0x%02x", flags, op)));
	if (netbuf_ops[op].handler != NULL &&
		(netbuf_ops[op].handler != handler || netbuf_ops[op].flags != flags))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("netbuf: op code 0x%02x already has a handler", op)));
	netbuf_ops[op].handler = handler;
	netbuf_ops[op].flags = flags;
}

void
netbuf_serve_register_handler(unsigned char op, NetbufHandler handler)
{
	netbuf_serve_register_handler_ext(op, handler, 0);
}

/* 'E': echo the message unchanged. */
static void
netbuf_handle_echo(const char *request, int nbytes, StringInfo reply)
{
	appendBinaryStringInfo(reply, request, nbytes);
}

/* 'N': k int32 in, each + 300 out; the checking is in Rust (src/protocol.rs). */
static void
netbuf_handle_add300(const char *request, int nbytes, StringInfo reply)
{
	NbError		err;
	int			len;

	enlargeStringInfo(reply, nbytes);
	len = nb_rust->op_add300(request, nbytes, reply->data + reply->len,
							 reply->maxlen - reply->len, &err);
	if (len < 0)
		netbuf_raise(&err);
	reply->len += len;
	reply->data[reply->len] = '\0';
}

static void
netbuf_assign_max_message_size(int newval, void *extra)
{
	/* New channels of this backend accept replies up to this size. */
	nb_rust->set_max_message_size(newval);
}

void
netbuf_serve_init(void)
{
	DefineCustomIntVariable("netbuf.max_message_size",
							"Largest netbuf message accepted: requests on the primary, replies on the standby.",
							"A larger message is refused with an error before memory is allocated for it.",
							&netbuf_max_message_size,
							64 * 1024 * 1024,
							16,
							PQ_LARGE_MESSAGE_LIMIT,
							PGC_SUSET,
							GUC_UNIT_BYTE,
							NULL, netbuf_assign_max_message_size, NULL);
	DefineCustomIntVariable("netbuf.peer_timeout",
							"How long a serving backend waits on a client that went silent.",
							"Applied as TCP keepalives and tcp_user_timeout on the channel's socket; "
							"0 leaves the server's tcp_keepalives_* and tcp_user_timeout settings.",
							&netbuf_peer_timeout,
							30 * 1000,
							0,
							INT_MAX / 1000,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	MarkGUCPrefixReserved("netbuf");

	/* Neither touches database state: no transaction per request. */
	netbuf_serve_register_handler_ext('E', netbuf_handle_echo, NETBUF_HANDLER_NO_TRANSACTION);
	netbuf_serve_register_handler_ext('N', netbuf_handle_add300, NETBUF_HANDLER_NO_TRANSACTION);
}

/* The client is gone: leave without writing to its socket (cf. WalSndShutdown). */
static void
netbuf_serve_exit(void)
{
	whereToSendOutput = DestNone;
	proc_exit(0);
}

/*
 * Sleep until the client socket is ready for socket_events or the latch is
 * set, then serve interrupts.
 */
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
			netbuf_serve_exit();
		if (!pq_is_send_pending())
		{
			netbuf_unsent = 0;
			break;
		}
		netbuf_serve_wait(WL_SOCKET_WRITEABLE, netbuf_wait_event(NETBUF_WAIT_SERVE_SEND));
	}
}

/*
 * Messages at least this large skip pqcomm's 8 kB buffers: a 1 MiB request
 * would otherwise take ~128 recv() calls and one more copy, a 1 MiB reply
 * one more copy into pqcomm's send buffer.
 */
#define NETBUF_DIRECT_IO (64 * 1024)

/* Read exactly len bytes from the client socket (waits; serves termination). */
static void
netbuf_recv_exactly(char *dst, size_t len)
{
	MyProcPort->noblock = false;
	while (len > 0)
	{
		ssize_t		n = secure_read(MyProcPort, dst, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			netbuf_serve_exit();
		dst += n;
		len -= n;
	}
}

/* Write exactly len bytes to the client socket (waits; serves termination). */
static void
netbuf_send_exactly(const char *src, size_t len)
{
	MyProcPort->noblock = false;
	while (len > 0)
	{
		ssize_t		n = secure_write(MyProcPort, unconstify(char *, src), len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			netbuf_serve_exit();
		src += n;
		len -= n;
	}
}

/* Is the connection unencrypted, so that the socket carries protocol bytes? */
static bool
netbuf_plain_socket(void)
{
	if (MyProcPort->ssl_in_use)
		return false;
#ifdef ENABLE_GSS
	if (MyProcPort->gss != NULL && MyProcPort->gss->enc)
		return false;
#endif
	return true;
}

/*
 * After a large request, take the next one straight from the socket into
 * the request buffer.  Only when pqcomm holds no input (so nothing is read
 * out of order), only for CopyData of NETBUF_DIRECT_IO bytes up to
 * netbuf.max_message_size, and only on a plain socket: the header is peeked
 * first, and anything else is left to pqcomm untouched.  Returns whether it
 * read a message.
 */
static bool
netbuf_read_large_request(StringInfo request)
{
	char		header[5];
	uint32		netlen;
	int64		len;

	if (pq_buffer_has_data() || !netbuf_plain_socket())
		return false;
	if (recv(MyProcPort->sock, header, sizeof(header), MSG_PEEK | MSG_DONTWAIT) != sizeof(header) ||
		header[0] != 'd')
		return false;
	memcpy(&netlen, header + 1, sizeof(netlen));
	len = (int64) pg_ntoh32(netlen) - 4;
	if (len < NETBUF_DIRECT_IO || len > netbuf_max_message_size)
		return false;

	/*
	 * Allocate before consuming anything: an out-of-memory ERROR here leaves
	 * the message unread, so the session stays in protocol sync.
	 */
	enlargeStringInfo(request, (int) len);

	/* As in netbuf_read_message: no ERROR while the message is half read. */
	HOLD_CANCEL_INTERRUPTS();
	netbuf_recv_exactly(header, sizeof(header));
	netbuf_recv_exactly(request->data, len);
	request->len = (int) len;
	request->data[len] = '\0';
	RESUME_CANCEL_INTERRUPTS();
	return true;
}

/* Send a large reply without copying it into pqcomm's send buffer. */
static void
netbuf_send_large_reply(StringInfo reply)
{
	char		header[5];
	uint32		netlen = pg_hton32((uint32) reply->len + 4);

	/* Replies queued before this one go first. */
	if (pq_flush() != 0)
		netbuf_serve_exit();
	header[0] = 'd';
	memcpy(header + 1, &netlen, sizeof(netlen));
	netbuf_send_exactly(header, sizeof(header));
	netbuf_send_exactly(reply->data, reply->len);
}

/* Look up the handler of a request, or refuse it. */
static const NetbufOp *
netbuf_lookup_op(StringInfo request)
{
	unsigned char op;

	if (request->len < 1)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("netbuf: empty message"),
				 errdetail("A message starts with a one-byte op code.")));

	op = (unsigned char) request->data[0];
	if (netbuf_ops[op].handler == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("netbuf: unknown op code 0x%02x%s%c%s", op,
						isprint(op) ? " ('" : "", isprint(op) ? op : ' ',
						isprint(op) ? "')" : ""),
				 errhint("The primary serves the built-in ops 'E' and 'N' and those of modules loaded into its serving backends.")));
	return &netbuf_ops[op];
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

	pgstat_report_activity(STATE_RUNNING, NULL);
	if (transaction)
	{
		/*
		 * Such a handler may take a while: let the replies queued before it
		 * go now rather than after it (without waiting for the socket).
		 */
		if (pq_flush_if_writable() != 0)
			netbuf_serve_exit();
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

	if (reply->len >= NETBUF_DIRECT_IO)
		netbuf_send_large_reply(reply);
	else
		/* Queued, not flushed: the loop flushes once its input is drained. */
		netbuf_queue_reply(reply);
	pgstat_report_activity(STATE_IDLE, NULL);
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
		netbuf_serve_exit();
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
				netbuf_serve_exit();
		pq_endmsgread();
		RESUME_CANCEL_INTERRUPTS();
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("netbuf: message of %lld bytes exceeds netbuf.max_message_size (%d bytes)",
						(long long) len, netbuf_max_message_size)));
	}

	enlargeStringInfo(request, (int) len);
	if (pq_getbytes(request->data, len) == EOF)
		netbuf_serve_exit();
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
				netbuf_serve_exit();
			if (r == 0)
			{
				/* Input drained: send what is queued, then sleep. */
				pq_endmsgread();
				if (pq_flush_if_writable() != 0)
					netbuf_serve_exit();
				if (pq_is_send_pending())
					netbuf_serve_wait(WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE,
									  netbuf_wait_event(NETBUF_WAIT_SERVE_SEND));
				else
					netbuf_serve_wait(WL_SOCKET_READABLE, netbuf_wait_event(NETBUF_WAIT_SERVE_RECV));
				continue;
			}
			netbuf_read_message(&request);
		}
		large_stream = (msgtype == 'd' && request.len >= NETBUF_DIRECT_IO);

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
					netbuf_serve_exit();
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
				netbuf_serve_exit();
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
 * must be noticed by the kernel: keepalive probes after half the timeout,
 * three of them in the rest, and TCP_USER_TIMEOUT for unacknowledged
 * replies.  (The pq_set* functions skip Unix-domain sockets.)
 */
static void
netbuf_watch_silent_peer(void)
{
	int			idle_s = Max(1, netbuf_peer_timeout / 2000);
	int			interval_s = Max(1, netbuf_peer_timeout / 6000);

	if (netbuf_peer_timeout == 0 || MyProcPort == NULL)
		return;
	(void) pq_setkeepalivesidle(idle_s, MyProcPort);
	(void) pq_setkeepalivesinterval(interval_s, MyProcPort);
	(void) pq_setkeepalivescount(3, MyProcPort);
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
	MemoryContext serve_context;
	MemoryContext message_context;
	StringInfoData start;
	volatile int max_reply_size = netbuf_max_reply_size_arg(fcinfo);

	/* Non-atomic so that SPI_commit below can drop the CALL's snapshot. */
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
	 * A channel lives as long as the standby wants it: end the CALL's
	 * transaction now so that it holds no snapshot (no backend_xmin), lock
	 * or xid while it waits.  SPI_commit drops the portal's snapshots and
	 * starts a new transaction, which is committed at once, leaving none.
	 */
	if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect_ext failed");
	SPI_commit();
	SPI_finish();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);

	/*
	 * statement_timeout (and, 17+, transaction_timeout) would end a channel
	 * that lives longer than them: see pg_compat.h.
	 */
	netbuf_disarm_timeouts();

	/* CopyBothResponse: text format, no columns. */
	pq_beginmessage(&start, 'W');
	pq_sendbyte(&start, 0);
	pq_sendint16(&start, 0);
	pq_endmessage(&start);
	if (pq_flush() != 0)
		netbuf_serve_exit();

	/* Under TopMemoryContext: the CALL's own contexts do not outlive commits. */
	serve_context = AllocSetContextCreate(TopMemoryContext,
										  "netbuf serve",
										  ALLOCSET_DEFAULT_SIZES);
	message_context = AllocSetContextCreate(serve_context,
											"netbuf message",
											ALLOCSET_DEFAULT_SIZES);
	PG_TRY();
	{
		MemoryContextSwitchTo(serve_context);
		netbuf_serve_loop(message_context, max_reply_size);
	}
	PG_FINALLY();
	{
		MemoryContextDelete(serve_context);
	}
	PG_END_TRY();

	/* exec_simple_query commits the CALL's transaction: give it one. */
	StartTransactionCommand();
	pgstat_report_activity(STATE_RUNNING, NULL);
	MemoryContextSwitchTo(caller_context);
	PG_RETURN_VOID();
}

const Pg_finfo_record *
netbuf_shim_finfo_serve(void)
{
	static const Pg_finfo_record finfo = {1};

	return &finfo;
}
