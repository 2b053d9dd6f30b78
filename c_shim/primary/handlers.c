/*-------------------------------------------------------------------------
 *
 * handlers.c
 *	  The primary's handler registry: one handler per op code (the first
 *	  byte of a request), and the two built-ins, 'E' and 'N'.
 *
 * Modules loaded into a serving backend register their ops through
 * netbuf.h's netbuf_register_handler(_ext); the built-ins register the same
 * way, from _PG_init, so that a module cannot take their op codes.
 *
 * IDENTIFICATION
 *	  c_shim/primary/handlers.c
 *
 *-------------------------------------------------------------------------
 */
#include "internal.h"

#include <ctype.h>

/* One handler per op code; the built-ins register like everyone else. */
static NetbufOp netbuf_ops[256];

void
netbuf_primary_register_handler_ext(unsigned char op, NetbufHandler handler, int flags)
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
netbuf_primary_register_handler(unsigned char op, NetbufHandler handler)
{
	netbuf_primary_register_handler_ext(op, handler, 0);
}

/*
 * Requests whose op code has no C handler: module.c sets sql_ops.c's
 * handler here, which answers them with the functions of netbuf.ops, in a
 * transaction.  So a C handler always wins over a registration made from
 * SQL.  (Set from module.c so that this file does not depend on sql_ops.c,
 * which depends on it.)
 */
static NetbufOp netbuf_fallback_op = {NULL, 0};

void
netbuf_set_fallback_handler(NetbufHandler handler)
{
	netbuf_fallback_op.handler = handler;
}

/* Look up the handler of a request, or refuse it. */
const NetbufOp *
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
	{
		if (netbuf_fallback_op.handler == NULL)
			netbuf_unknown_op(op);
		return &netbuf_fallback_op;
	}
	return &netbuf_ops[op];
}

/* Refuse a request whose op code nobody answers. */
void
netbuf_unknown_op(unsigned char op)
{
	ereport(ERROR,
			(errcode(ERRCODE_PROTOCOL_VIOLATION),
			 errmsg("netbuf: unknown op code 0x%02x%s%c%s", op,
					isprint(op) ? " ('" : "", isprint(op) ? op : ' ',
					isprint(op) ? "')" : ""),
			 errhint("The primary serves the built-in ops 'E' and 'N', those of modules loaded into its serving backends and those registered with netbuf.register_op().")));
}

/* 'E': echo the message unchanged. */
static void
netbuf_handle_echo(const char *request, int nbytes, StringInfo reply)
{
	appendBinaryStringInfo(reply, request, nbytes);
}

/* 'N': k int32 in, each + 300 out; the checking is in Rust (src/demo_op.rs). */
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

/*
 * Whether op has a C handler in this backend, and if so whether it is a
 * built-in (sql_ops.c refuses to register such op codes from SQL).
 */
bool
netbuf_c_op_registered(unsigned char op, bool *builtin)
{
	*builtin = (netbuf_ops[op].handler == netbuf_handle_echo ||
				netbuf_ops[op].handler == netbuf_handle_add300);
	return netbuf_ops[op].handler != NULL;
}

void
netbuf_register_builtin_handlers(void)
{
	/* Neither touches database state: no transaction per request. */
	netbuf_primary_register_handler_ext('E', netbuf_handle_echo, NETBUF_HANDLER_NO_TRANSACTION);
	netbuf_primary_register_handler_ext('N', netbuf_handle_add300, NETBUF_HANDLER_NO_TRANSACTION);
}
