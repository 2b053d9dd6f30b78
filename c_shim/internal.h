/*
 * shim.h -- declarations shared by the C files of the shim (backend side).
 */
#ifndef NETBUF_SHIM_INTERNAL_H
#define NETBUF_SHIM_INTERNAL_H

#include "postgres.h"
#include "fmgr.h"

#include "netbuf.h"
#include "common/pg_compat.h"
#include "boundary.h"

/* Entry points exported through src/backend_exports.rs. */
extern const Pg_magic_struct *netbuf_shim_magic(void);
extern void netbuf_shim_init(const NbRustApi *api);
extern const Pg_finfo_record *netbuf_shim_finfo_serve(void);
extern Datum netbuf_shim_serve(PG_FUNCTION_ARGS);

/* module.c */
extern const NbRustApi *nb_rust;	/* the Rust core, set by netbuf_shim_init */
pg_noreturn extern void netbuf_raise(const NbError *err);

/* client.c: the standby side of the function table. */
extern NetbufConn *netbuf_client_connect(const char *conninfo);
extern void netbuf_client_send(NetbufConn *conn, const char *buffer, int nbytes);
extern int	netbuf_client_recv(NetbufConn *conn, char **buffer, pgsocket *wait_fd);
extern void netbuf_client_disconnect(NetbufConn *conn);
extern void netbuf_client_queue(NetbufConn *conn, const char *buffer, int nbytes);
extern void netbuf_client_flush(NetbufConn *conn);
extern void netbuf_client_pin(NetbufConn *conn);

/* serve.c: the primary side. */
extern void netbuf_serve_register_handler(unsigned char op, NetbufHandler handler);
extern void netbuf_serve_register_handler_ext(unsigned char op, NetbufHandler handler,
											  int flags);
extern void netbuf_serve_init(void);

/* wait_events.c: what pg_stat_activity shows while netbuf sleeps. */
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

#endif							/* NETBUF_SHIM_INTERNAL_H */
