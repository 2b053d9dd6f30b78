/*
 * module.c -- what makes libnetbuf.so a PostgreSQL module: the magic block,
 * _PG_init, and the function table published for netbuf.h.
 */
#include "shim.h"

static const NetbufFunctions netbuf_function_table = {
	.abi_version = NETBUF_ABI_VERSION,
	.connect = netbuf_client_connect,
	.send = netbuf_client_send,
	.recv = netbuf_client_recv,
	.disconnect = netbuf_client_disconnect,
	.queue = netbuf_client_queue,
	.flush = netbuf_client_flush,
	.register_handler = netbuf_serve_register_handler,
};

const Pg_magic_struct *
netbuf_shim_magic(void)
{
	static const Pg_magic_struct magic = PG_MODULE_MAGIC_DATA;

	return &magic;
}

void
netbuf_shim_init(void)
{
	const NetbufFunctions **slot;

	/* Publish the table first: the built-in handlers register through it. */
	slot = (const NetbufFunctions **) find_rendezvous_variable(NETBUF_RENDEZVOUS);
	*slot = &netbuf_function_table;

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
