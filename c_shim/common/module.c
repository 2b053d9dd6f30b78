/*
 * module.c -- what makes libnetbuf.so a PostgreSQL module: the magic block,
 * _PG_init, and the function table published for netbuf.h.
 */
#include "internal.h"

#include "utils/guc.h"

/* Developer GUC netbuf.debug_panic_at: where the Rust core should panic. */
static const struct config_enum_entry netbuf_panic_points[] = {
	{"none", NB_PANIC_NONE, false},
	{"connect", NB_PANIC_CONNECT, false},
	{"send", NB_PANIC_SEND, false},
	{"recv", NB_PANIC_RECV, false},
	{"serve", NB_PANIC_SERVE, false},
	{NULL, 0, false}
};
static int	netbuf_debug_panic_at = NB_PANIC_NONE;

const NbRustApi *nb_rust = NULL;

static void
netbuf_assign_panic_at(int newval, void *extra)
{
	nb_rust->set_panic_point((NbPanicPoint) newval);
}

static const NetbufFunctions netbuf_function_table = {
	.abi_version = NETBUF_ABI_VERSION,
	.connect = netbuf_client_connect,
	.send = netbuf_client_send,
	.recv = netbuf_client_recv,
	.disconnect = netbuf_client_disconnect,
	.queue = netbuf_client_queue,
	.flush = netbuf_client_flush,
	.register_handler = netbuf_serve_register_handler,
	.pin = netbuf_client_pin,
	.register_handler_ext = netbuf_serve_register_handler_ext,
};

const Pg_magic_struct *
netbuf_shim_magic(void)
{
	static const Pg_magic_struct magic = NETBUF_MODULE_MAGIC_DATA;

	return &magic;
}

void
netbuf_shim_init(const NbRustApi *api)
{
	const NetbufFunctions **slot;

	nb_rust = api;

	/* Publish the table first: the built-in handlers register through it. */
	slot = (const NetbufFunctions **) find_rendezvous_variable(NETBUF_RENDEZVOUS);
	*slot = &netbuf_function_table;

	DefineCustomEnumVariable("netbuf.debug_panic_at",
							 "Makes netbuf's Rust code panic at this point (for testing).",
							 "A panic must end as an ERROR, never as a backend crash.",
							 &netbuf_debug_panic_at,
							 NB_PANIC_NONE,
							 netbuf_panic_points,
							 PGC_SUSET,
							 GUC_NOT_IN_SAMPLE,
							 NULL, netbuf_assign_panic_at, NULL);

	netbuf_serve_init();
}

/* ereport an error the Rust core described. */
void
netbuf_raise(const NbError *err)
{
	const char *s = err->sqlstate;
	int			sqlerrcode = ERRCODE_INTERNAL_ERROR;

	if (strlen(s) == 5)
		sqlerrcode = MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4]);

	ereport(ERROR,
			(errcode(sqlerrcode),
			 errmsg_internal("%s", err->message),
			 err->detail[0] ? errdetail_internal("%s", err->detail) : 0,
			 err->hint[0] ? errhint("%s", err->hint) : 0,
			 err->context[0] ? errcontext("%s", err->context) : 0));
	pg_unreachable();
}
