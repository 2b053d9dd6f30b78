/*
 * netbuf_shim.h -- the boundary between the C shim and the Rust core.
 *
 * Everything that crosses between the C files of c_shim/ and src/ is declared here and
 * nowhere else; build.rs runs bindgen on this file, so the Rust side sees
 * exactly these types and the two cannot drift apart.  It includes no
 * PostgreSQL header on purpose: Rust never calls the backend.
 *
 * The rule of the boundary: C calls Rust, Rust returns a status and, on
 * failure, fills an NbError; C does every wait, every interrupt check and
 * every ereport.  Rust never longjmps and never lets a panic escape.
 */
#ifndef NETBUF_SHIM_H
#define NETBUF_SHIM_H

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
 * Settings the GUCs' assign hooks hand to the Rust core.
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

	void		(*set_max_message_size) (int nbytes);
	void		(*set_panic_point) (NbPanicPoint point);
} NbRustApi;

/*
 * Not declared here: the C entry points PostgreSQL looks up with dlsym
 * (netbuf_shim_magic, netbuf_shim_init, netbuf_shim_finfo_serve,
 * netbuf_shim_serve, see shim.h).  rustc exports only Rust symbols from a
 * cdylib, so src/backend_exports.rs exports Pg_magic_func, _PG_init,
 * pg_finfo_netbuf_serve and netbuf_serve as naked jumps to them: no Rust
 * frame ever stands between PostgreSQL and C code that may ereport.  The
 * jump for _PG_init passes the NbRustApi table as netbuf_shim_init's
 * argument.
 */

#endif							/* NETBUF_SHIM_H */
