/*-------------------------------------------------------------------------
 *
 * boundary.h
 *	  The boundary between the C files of c_shim/ and the Rust core (src/).
 *
 * Everything that crosses between the two is declared here and nowhere
 * else: the types (build.rs runs bindgen on this file for the backend
 * feature, so the Rust side sees exactly these) and every number or name
 * both languages use, as `#define NB_<NAME> <integer or "string">`, which
 * build.rs also copies into Rust constants for every build, with or
 * without the backend feature (src/boundary.rs).  It includes no
 * PostgreSQL header on purpose: Rust never calls the backend, and the Rust
 * API is built without the server headers.
 *
 * The rule of the boundary: C calls Rust, Rust returns a status and, on
 * failure, fills an NbError; C does every wait, every interrupt check and
 * every ereport.  Rust never longjmps and never lets a panic escape.
 *
 * IDENTIFICATION
 *	  c_shim/boundary.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef NETBUF_BOUNDARY_H
#define NETBUF_BOUNDARY_H

/*
 * Constants of both languages.  build.rs reads each `#define NB_` line
 * with a tiny parser: the value is a decimal or hexadecimal integer, a
 * parenthesised product of such integers, or a string literal without
 * escapes; anything else fails the build rather than being skipped.
 */

/*
 * Message size limits: netbuf.max_message_size (common/gucs.c) and the Rust
 * API's ConnectOptions::max_message_size (src/protocol.rs).  The smallest
 * limit leaves room for an op code and a few bytes; the largest is the
 * largest message PostgreSQL's protocol layer reads, PQ_LARGE_MESSAGE_LIMIT
 * (gucs.c asserts that they are equal).
 */
#define NB_MAX_MESSAGE_SIZE_DEFAULT (64 * 1024 * 1024)
#define NB_MAX_MESSAGE_SIZE_MIN 16
#define NB_MAX_MESSAGE_SIZE_MAX 0x3ffffffe

/*
 * Messages at least this large skip pqcomm's buffers on the primary
 * (primary/direct_io.c).  Only C uses it today; it stands with the other
 * sizes of a message so that Rust code (tests, benchmarks) can size
 * messages around it.
 */
#define NB_DIRECT_IO_MIN_SIZE (64 * 1024)

/*
 * The silent-peer policy.  A channel idles for days and must still notice a
 * peer that vanished without a FIN or RST (a network partition, a host
 * powered off): TCP alone would take 2 hours (idle) or about 15 minutes
 * (unacknowledged data).  For a timeout T, keepalive probes start after
 * T / IDLE_DIVISOR idle and follow every T / INTERVAL_DIVISOR; COUNT
 * unanswered ones end the connection (so after T / 2 + 3 * T / 6 = T),
 * and TCP_USER_TIMEOUT = T ends it when data stays unacknowledged.
 *
 * The primary applies it to a serving backend's socket with T =
 * netbuf.peer_timeout (default NB_PEER_TIMEOUT_DEFAULT_MS, primary/serve.c);
 * the Rust core adds it with the default T to every connection string that
 * does not set these itself (src/conninfo/mod.rs).
 */
#define NB_PEER_TIMEOUT_DEFAULT_MS 30000
#define NB_PEER_KEEPALIVE_IDLE_DIVISOR 2
#define NB_PEER_KEEPALIVE_INTERVAL_DIVISOR 6
#define NB_PEER_KEEPALIVE_COUNT 3

/* A channel to the primary, owned by Rust (src/channel.rs). */
typedef struct NbChannel NbChannel;

/* What a Rust step function asks its caller to do next. */
typedef enum NbStatus
{
	NB_DONE = 0,				/* the step finished */
	NB_WAIT_READ = 1,			/* wait until the socket is readable, call again */
	NB_WAIT_WRITE = 2,			/* wait until readable or writable, call again */
	NB_END_OF_STREAM = 3,		/* nb_recv only: the primary ended the stream */
	NB_ERROR = 4				/* failed: the NbError says why */
} NbStatus;

/* An error, ready for ereport: SQLSTATE plus message, detail, hint, context. */
typedef struct NbError
{
	char		sqlstate[6];	/* five characters and a NUL */
	char		message[1024];
	char		detail[1024];	/* "" when there is none, also below */
	char		hint[512];
	char		context[256];
} NbError;

/*
 * Settings the GUCs' assign hooks (common/gucs.c) hand to the Rust core.
 *
 * set_max_message_size: the largest reply a channel opened from now on
 * accepts (netbuf.max_message_size on the standby); the primary is told in
 * the CALL and refuses to send a larger one.
 *
 * set_panic_point: the developer GUC netbuf.debug_panic_at makes the Rust
 * core panic at that point, to test that a panic ends as a clean ERROR.
 */
typedef enum NbPanicPoint
{
	NB_PANIC_NONE = 0,
	NB_PANIC_CONNECT = 1,		/* connect_start */
	NB_PANIC_SEND = 2,			/* send */
	NB_PANIC_RECV = 3,			/* recv */
	NB_PANIC_SERVE = 4			/* op_add300, on the primary */
} NbPanicPoint;

/*
 * The names netbuf.debug_panic_at gives the points (NB_PANIC_NAME_X names
 * NB_PANIC_X): its values in SQL (common/gucs.c), and the message of the
 * injected panic (src/boundary.rs).
 */
#define NB_PANIC_NAME_NONE "none"
#define NB_PANIC_NAME_CONNECT "connect"
#define NB_PANIC_NAME_SEND "send"
#define NB_PANIC_NAME_RECV "recv"
#define NB_PANIC_NAME_SERVE "serve"

/*
 * A standby channel as the SQL functions of standby/sql_api.c see it
 * (nb_rust->describe): netbuf.channels() shows it, and a cached channel
 * that is NB_CHANNEL_BROKEN is opened anew rather than reused.
 */
typedef enum NbChannelState
{
	NB_CHANNEL_CONNECTING = 0,	/* connecting, securing search_path, entering COPY */
	NB_CHANNEL_STREAMING = 1,	/* in COPY BOTH */
	NB_CHANNEL_DRAINING = 2,	/* the primary ended the stream; results arriving */
	NB_CHANNEL_IDLE = 3,		/* connected, no stream: the next send re-enters it */
	NB_CHANNEL_BROKEN = 4		/* no usable connection: the next send reconnects */
} NbChannelState;

typedef struct NbChannelInfo
{
	NbChannelState state;
	int			serving_pid;	/* the primary's serving backend; 0 if none */
	int			used_password;	/* 1: the connection authenticated with a password */
	int			in_flight;		/* requests whose replies were not received */
	/* Over the channel's life, reconnections included (op codes counted): */
	long long	requests;		/* requests queued */
	long long	replies;		/* replies received */
	long long	bytes_sent;
	long long	bytes_received;
} NbChannelInfo;

/* What nb_rust->mask_conninfo found in a connection string. */
typedef enum NbConninfoKind
{
	NB_CONNINFO_INVALID = 0,	/* libpq does not parse it */
	NB_CONNINFO_NO_PASSWORD = 1,	/* it sets no non-empty password */
	NB_CONNINFO_HAS_PASSWORD = 2	/* it sets a non-empty password */
} NbConninfoKind;

/*
 * What the Rust core offers the C shim: one table of function pointers,
 * handed to netbuf_shim_init() by _PG_init.  Reaching Rust through a table
 * rather than through symbols keeps every Rust function out of the
 * library's dynamic symbol table: PostgreSQL loads modules RTLD_GLOBAL, so
 * an exported name could be interposed by another module's.
 *
 * Standby side: a non-blocking state machine over libpq.  Each step returns
 * NB_WAIT_* rather than blocking; the caller waits on socket() (and its
 * latch), at most wait_timeout_ms() milliseconds (-1: no limit), then calls
 * the same step again with the same arguments.
 */
typedef struct NbRustApi
{
	NbChannel  *(*connect_start) (const char *conninfo, NbError *err);
	NbStatus	(*connect_continue) (NbChannel *chan, NbError *err);
	int			(*socket) (const NbChannel *chan);
	long		(*wait_timeout_ms) (const NbChannel *chan);
	NbStatus	(*send) (NbChannel *chan, const char *data, int nbytes, NbError *err);
	NbStatus	(*flush) (NbChannel *chan, NbError *err);
	NbStatus	(*recv) (NbChannel *chan, const char **data, int *nbytes, NbError *err);

	/* Requests sent whose replies were not received (capped at INT_MAX). */
	int			(*in_flight) (const NbChannel *chan);

	/*
	 * Give up on whatever is in flight: close the connection (its replies
	 * are discarded) and fail later calls until a send reconnects; why says
	 * what interrupted the caller, for the error those calls report.
	 */
	void		(*reset) (NbChannel *chan, const char *why);
	void		(*close) (NbChannel *chan);

	/*
	 * Primary side, op 'N': checks the request ('N' then k >= 1 int32) and
	 * writes k int32, each + 300, into reply (capacity reply_cap).  Returns
	 * the reply's length, or -1 with *err filled.
	 */
	int			(*op_add300) (const char *request, int nbytes, char *reply, int reply_cap,
							  NbError *err);

	/* The standby's SQL functions (standby/sql_api.c). */
	void		(*describe) (const NbChannel *chan, NbChannelInfo *info);

	/*
	 * conninfo for display: libpq's parse of it as keyword=value pairs with
	 * every password replaced by ********, written into out (capacity cap,
	 * cut short if needed, always NUL-terminated), and whether it sets a
	 * password (on NB_CONNINFO_INVALID, out says the string is not shown).
	 */
	NbConninfoKind (*mask_conninfo) (const char *conninfo, char *out, int cap);

	/* The connection string chan was opened with, masked the same way. */
	void		(*channel_conninfo) (const NbChannel *chan, char *out, int cap);

	void		(*set_max_message_size) (int nbytes);
	void		(*set_panic_point) (NbPanicPoint point);
} NbRustApi;

/*
 * Not declared here: the C entry points PostgreSQL looks up with dlsym
 * (netbuf_shim_magic, netbuf_shim_init, netbuf_shim_finfo_serve,
 * netbuf_shim_serve, see internal.h).  rustc exports only Rust symbols from
 * a cdylib, so src/c_abi/exports.rs exports Pg_magic_func, _PG_init,
 * pg_finfo_netbuf_serve and netbuf_serve as naked jumps to them: no Rust
 * frame ever stands between PostgreSQL and C code that may ereport.  The
 * jump for _PG_init passes the NbRustApi table as netbuf_shim_init's
 * argument.
 */

#endif							/* NETBUF_BOUNDARY_H */
