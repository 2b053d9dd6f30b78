/*
 * shim.h -- declarations shared by the C files of the shim (backend side).
 */
#ifndef NETBUF_SHIM_INTERNAL_H
#define NETBUF_SHIM_INTERNAL_H

#include "postgres.h"
#include "fmgr.h"

#include "netbuf.h"
#include "netbuf_shim.h"

/* Entry points exported through src/backend_exports.rs. */
extern const Pg_magic_struct *netbuf_shim_magic(void);
extern void netbuf_shim_init(const NbRustApi *api);
extern const Pg_finfo_record *netbuf_shim_finfo_serve(void);
extern Datum netbuf_shim_serve(PG_FUNCTION_ARGS);

/* module.c */
extern const NbRustApi *nb_rust;	/* the Rust core, set by netbuf_shim_init */
extern void netbuf_raise(const NbError *err) pg_attribute_noreturn();

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

#endif							/* NETBUF_SHIM_INTERNAL_H */
