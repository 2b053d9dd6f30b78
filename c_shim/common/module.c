/*-------------------------------------------------------------------------
 *
 * module.c
 *	  What makes libnetbuf.so a PostgreSQL module: the magic block, _PG_init
 *	  (netbuf_shim_init) and the function table that include/netbuf.h
 *	  finds through a rendezvous variable.
 *
 * This is the one file that ties the others together: it reaches the
 * standby side (standby/), the primary side (primary/) and common/.  No
 * other file calls back into it, so the only way in is from PostgreSQL,
 * through the naked jumps of src/c_abi/exports.rs.
 *
 * IDENTIFICATION
 *	  c_shim/common/module.c
 *
 *-------------------------------------------------------------------------
 */
#include "internal.h"

/*
 * The table netbuf.h calls through.  Code that load_file()s netbuf at run
 * time cannot link against it, so it looks the table up by name instead.
 */
static const NetbufFunctions netbuf_function_table = {
	.abi_version = NETBUF_ABI_VERSION,
	.connect = netbuf_standby_connect,
	.send = netbuf_standby_send,
	.recv = netbuf_standby_recv,
	.disconnect = netbuf_standby_disconnect,
	.queue = netbuf_standby_queue,
	.flush = netbuf_standby_flush,
	.register_handler = netbuf_primary_register_handler,
	.pin = netbuf_standby_pin,
	.register_handler_ext = netbuf_primary_register_handler_ext,
};

const Pg_magic_struct *
netbuf_shim_magic(void)
{
	static const Pg_magic_struct magic = NETBUF_MODULE_MAGIC_DATA;

	return &magic;
}

/*
 * PG_FUNCTION_INFO_V1's record, one for every SQL-callable function of the
 * library: src/c_abi/exports.rs points each pg_finfo_<name> here.
 */
const Pg_finfo_record *
netbuf_shim_finfo_v1(void)
{
	static const Pg_finfo_record finfo = {1};

	return &finfo;
}

/*
 * _PG_init.  src/c_abi/exports.rs jumps here with the Rust core's table as
 * the argument.
 */
void
netbuf_shim_init(const NbRustApi *api)
{
	const NetbufFunctions **slot;

	/* First: the GUCs' assign hooks below call the Rust core. */
	nb_rust = api;

	/* Publish the table first: the built-in handlers register through it. */
	slot = (const NetbufFunctions **) find_rendezvous_variable(NETBUF_RENDEZVOUS);
	*slot = &netbuf_function_table;

	netbuf_define_gucs();
	netbuf_register_builtin_handlers();
	/* Op codes without a C handler: the SQL functions of netbuf.ops. */
	netbuf_set_fallback_handler(netbuf_sql_op_handle);
	/* The serving backends' counters: shared memory reserved (14-16) or not needed yet (17+). */
	netbuf_serving_shmem_init();
}
