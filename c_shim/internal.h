/*-------------------------------------------------------------------------
 *
 * internal.h
 *	  Declarations shared by the C files of libnetbuf.so.
 *
 * One section per file, in the order of the dependency rule: common/
 * first (its files depend on PostgreSQL, boundary.h and one another, never
 * on standby/ or primary/), then standby/ and primary/ (which use common/
 * but not each other), and last common/module.c, the only file that ties
 * the two sides together.  scripts/check-c-layering.sh checks the rule on
 * the compiled objects.  What crosses to Rust is declared in boundary.h,
 * not here.
 *
 * IDENTIFICATION
 *	  c_shim/internal.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef NETBUF_INTERNAL_H
#define NETBUF_INTERNAL_H

#include "postgres.h"
#include "fmgr.h"
#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"

#include "netbuf.h"
#include "boundary.h"
#include "common/pg_compat.h"

/* ---- common/rust_core.c ---------------------------------------------- */

/* The Rust core, set by netbuf_shim_init before anything else runs. */
extern const NbRustApi *nb_rust;

/* ---- common/errors.c ------------------------------------------------- */

pg_noreturn extern void netbuf_raise(const NbError *err);

/* ---- common/gucs.c --------------------------------------------------- */

extern int	netbuf_max_message_size;	/* netbuf.max_message_size */
extern int	netbuf_peer_timeout;	/* netbuf.peer_timeout, in ms */
extern bool netbuf_password_required;	/* netbuf.password_required */
extern bool netbuf_log_channels;	/* netbuf.log_channels */
extern void netbuf_define_gucs(void);

/* ---- common/wait_events.c: what pg_stat_activity shows while netbuf sleeps */

typedef enum NetbufWait
{
	NETBUF_WAIT_CONNECT,		/* standby: connecting to the primary */
	NETBUF_WAIT_SEND,			/* standby: sending requests */
	NETBUF_WAIT_RECV,			/* standby: waiting for a reply */
	NETBUF_WAIT_SERVE_RECV,		/* primary: waiting for a request */
	NETBUF_WAIT_SERVE_SEND,		/* primary: writing replies */
	NETBUF_WAIT_COUNT
} NetbufWait;
extern uint32 netbuf_wait_event(NetbufWait which);

/* ---- standby/ownership.c: a channel handle's owner and state ---------- */

extern NetbufConn *netbuf_conn_create(void);
extern void netbuf_conn_discard(NetbufConn *conn);
extern void netbuf_conn_attach(NetbufConn *conn, NbChannel *chan);
extern NbChannel *netbuf_call_begin(NetbufConn *conn);
extern void netbuf_call_end(NetbufConn *conn, NbStatus status, const NbError *err);
extern void netbuf_conn_note_send(NetbufConn *conn);
extern void netbuf_standby_pin(NetbufConn *conn);
extern void netbuf_standby_disconnect(NetbufConn *conn);
extern pgsocket netbuf_conn_describe(NetbufConn *conn, NbChannelInfo *info);
extern List *netbuf_conn_list(void);
extern void netbuf_conn_show(NetbufConn *conn, bool *pinned, TimestampTz *opened_at,
							 char *conninfo, int cap);

/* ---- standby/channel.c: the waits around the Rust core's steps -------- */

extern NetbufConn *netbuf_standby_connect(const char *conninfo);
extern void netbuf_standby_send(NetbufConn *conn, const char *buffer, int nbytes);
extern int	netbuf_standby_recv(NetbufConn *conn, char **buffer, pgsocket *wait_fd);
extern void netbuf_standby_queue(NetbufConn *conn, const char *buffer, int nbytes);
extern void netbuf_standby_flush(NetbufConn *conn);

/* ---- standby/sql_api.c: netbuf.request() and the other SQL functions -- */

/* Reached through src/c_abi/exports.rs (netbuf_sql_*). */
extern Datum netbuf_shim_sql_request(PG_FUNCTION_ARGS);
extern Datum netbuf_shim_sql_requests(PG_FUNCTION_ARGS);
extern Datum netbuf_shim_sql_channels(PG_FUNCTION_ARGS);
extern Datum netbuf_shim_sql_disconnect(PG_FUNCTION_ARGS);
extern Datum netbuf_shim_sql_disconnect_all(PG_FUNCTION_ARGS);

/* ---- primary/handlers.c: the op code registry and the built-ins ------- */

typedef struct NetbufOp
{
	NetbufHandler handler;
	int			flags;			/* NETBUF_HANDLER_* */
} NetbufOp;

extern void netbuf_primary_register_handler(unsigned char op, NetbufHandler handler);
extern void netbuf_primary_register_handler_ext(unsigned char op, NetbufHandler handler,
												int flags);
extern void netbuf_register_builtin_handlers(void);
extern const NetbufOp *netbuf_lookup_op(StringInfo request);
pg_noreturn extern void netbuf_unknown_op(unsigned char op);
extern bool netbuf_c_op_registered(unsigned char op, bool *builtin);
extern void netbuf_set_fallback_handler(NetbufHandler handler);

/* ---- primary/sql_ops.c: op codes answered by SQL functions (netbuf.ops) */

extern void netbuf_sql_op_handle(const char *request, int nbytes, StringInfo reply);
/* Reached through src/c_abi/exports.rs (netbuf_register_op, netbuf_unregister_op). */
extern Datum netbuf_shim_register_op(PG_FUNCTION_ARGS);
extern Datum netbuf_shim_unregister_op(PG_FUNCTION_ARGS);

/* ---- primary/serving_stats.c: the serving backends in shared memory --- */

extern void netbuf_serving_shmem_init(void);
extern void netbuf_serving_call_begin(void);
extern void netbuf_serving_call_end(bool clean);
extern void netbuf_serving_request(unsigned char op, int nbytes);
extern void netbuf_serving_reply(int nbytes);
extern void netbuf_serving_state(bool running);
/* Reached through src/c_abi/exports.rs (netbuf_serving_backends). */
extern Datum netbuf_shim_serving_backends(PG_FUNCTION_ARGS);

/* ---- primary/direct_io.c: the client socket below pqcomm -------------- */

pg_noreturn extern void netbuf_client_gone(void);
extern bool netbuf_read_large_request(StringInfo request);
extern void netbuf_send_large_reply(StringInfo reply);

/* ---- primary/serve.c: CALL netbuf.serve() ----------------------------- */

/* Reached through src/c_abi/exports.rs (netbuf_serve). */
extern Datum netbuf_shim_serve(PG_FUNCTION_ARGS);

/* ---- common/module.c: the module ------------------------------------- */

/* Reached through src/c_abi/exports.rs (Pg_magic_func, _PG_init, and every pg_finfo_*). */
extern const Pg_magic_struct *netbuf_shim_magic(void);
extern void netbuf_shim_init(const NbRustApi *api);
extern const Pg_finfo_record *netbuf_shim_finfo_v1(void);

#endif							/* NETBUF_INTERNAL_H */
