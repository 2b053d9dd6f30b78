/*-------------------------------------------------------------------------
 *
 * sql_ops.c
 *	  Op codes answered by SQL functions: netbuf.register_op(),
 *	  netbuf.unregister_op(), and the handler that runs the registered
 *	  function in the serving backend.
 *
 * The registrations live in the extension's configuration table netbuf.ops
 * (op "char", handler regprocedure), so that pg_dump keeps them.  A serving
 * backend looks the op up there at each request whose op code has no C
 * handler (handlers.c asks first, so C handlers -- the built-ins and those
 * of modules -- always win), inside the request's own transaction: a
 * registration committed by another session is seen at the next request,
 * with no cache to invalidate.  The table holds at most 256 rows; the
 * lookup is a heap scan with a key, a few microseconds next to calling the
 * function (see docs/sql-api.md for the figures).
 *
 * The function runs as the channel's role (serve() is not SECURITY
 * DEFINER), which needs EXECUTE on it, like any function it calls.
 *
 * IDENTIFICATION
 *	  c_shim/primary/sql_ops.c
 *
 *-------------------------------------------------------------------------
 */
#include "internal.h"

#include <ctype.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/stratnum.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

/* Where the registrations live (sql/netbuf--1.0--1.1.sql). */
#define NETBUF_OPS_SCHEMA	"netbuf"
#define NETBUF_OPS_TABLE	"ops"
#define NETBUF_OPS_ATTNUM_OP		1
#define NETBUF_OPS_ATTNUM_HANDLER	2

/* "0x45 ('E')" or "0x01": an op code as the error messages show it. */
static const char *
netbuf_op_text(unsigned char op)
{
	if (isprint(op))
		return psprintf("0x%02x ('%c')", op, op);
	return psprintf("0x%02x", op);
}

/*
 * Whether a function can be a handler: a plain function (payload bytea)
 * RETURNS bytea, not a set.  Returns NULL if it can, or why not.
 */
static const char *
netbuf_handler_signature_problem(Form_pg_proc proc)
{
	if (proc->prokind != PROKIND_FUNCTION)
		return "it is not a plain function";
	if (proc->proretset)
		return "it returns a set";
	if (proc->pronargs != 1 || proc->proargtypes.values[0] != BYTEAOID)
		return "it does not take exactly one argument of type bytea";
	if (proc->prorettype != BYTEAOID)
		return "it does not return bytea";
	return NULL;
}

/* ERROR unless the current user owns the extension or is a superuser. */
static void
netbuf_check_registrar(const char *what)
{
	Oid			extension = get_extension_oid("netbuf", false);

	if (!superuser() && !netbuf_extension_ownercheck(extension, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("netbuf: permission denied to %s", what),
				 errdetail("Only the owner of extension netbuf or a superuser may change the op codes its serving backends answer.")));
}

/* The op code argument: any byte but 0 (the empty "char"). */
static unsigned char
netbuf_op_arg(FunctionCallInfo fcinfo)
{
	unsigned char op;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("netbuf: the op code must not be NULL")));
	op = (unsigned char) PG_GETARG_CHAR(0);
	if (op == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("netbuf: the op code must not be empty")));
	return op;
}

/* netbuf.register_op(op "char", handler regprocedure) RETURNS void */
Datum
netbuf_shim_register_op(PG_FUNCTION_ARGS)
{
	unsigned char op = netbuf_op_arg(fcinfo);
	Oid			handler;
	HeapTuple	tuple;
	const char *problem;
	bool		builtin;
	Oid			argtypes[2] = {CHAROID, REGPROCEDUREOID};
	Datum		values[2];
	int			rc;

	netbuf_check_registrar("register op codes");
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("netbuf: the handler of op code %s must not be NULL",
						netbuf_op_text(op))));
	handler = PG_GETARG_OID(1);

	/*
	 * A C handler answers its op code before netbuf.ops is consulted:
	 * taking its op code would register something that never runs.
	 */
	if (netbuf_c_op_registered(op, &builtin))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("netbuf: op code %s is %s", netbuf_op_text(op),
						builtin ? "built into netbuf" : "taken by a C module loaded in this backend"),
				 errhint("Choose another op code.")));

	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(handler));
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("netbuf: function %u does not exist", handler)));
	problem = netbuf_handler_signature_problem((Form_pg_proc) GETSTRUCT(tuple));
	ReleaseSysCache(tuple);
	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("netbuf: function %s cannot handle op code %s: %s",
						format_procedure(handler), netbuf_op_text(op), problem),
				 errhint("A handler is a function (payload bytea) RETURNS bytea.")));

	values[0] = CharGetDatum((char) op);
	values[1] = ObjectIdGetDatum(handler);
	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	rc = SPI_execute_with_args("INSERT INTO netbuf.ops (op, handler) VALUES ($1, $2) "
							   "ON CONFLICT (op) DO UPDATE SET handler = EXCLUDED.handler",
							   2, argtypes, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "netbuf: registering op code %s failed: %s",
			 netbuf_op_text(op), SPI_result_code_string(rc));
	if ((rc = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(rc));
	PG_RETURN_VOID();
}

/* netbuf.unregister_op(op "char") RETURNS void */
Datum
netbuf_shim_unregister_op(PG_FUNCTION_ARGS)
{
	unsigned char op = netbuf_op_arg(fcinfo);
	Oid			argtypes[1] = {CHAROID};
	Datum		values[1];
	uint64		deleted;
	int			rc;

	netbuf_check_registrar("unregister op codes");
	values[0] = CharGetDatum((char) op);
	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed: %s", SPI_result_code_string(rc));
	rc = SPI_execute_with_args("DELETE FROM netbuf.ops WHERE op = $1",
							   1, argtypes, values, NULL, false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "netbuf: unregistering op code %s failed: %s",
			 netbuf_op_text(op), SPI_result_code_string(rc));
	deleted = SPI_processed;
	if ((rc = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed: %s", SPI_result_code_string(rc));
	if (deleted == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("netbuf: op code %s is not registered", netbuf_op_text(op))));
	PG_RETURN_VOID();
}

/*
 * The function registered for op in netbuf.ops, or InvalidOid.  Runs in
 * the request's transaction; reads the table without the channel role's
 * privileges on it (it is the extension's own configuration, as a catalog
 * is).
 */
static Oid
netbuf_find_sql_op(unsigned char op)
{
	Oid			schema = get_namespace_oid(NETBUF_OPS_SCHEMA, true);
	Oid			relid;
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tuple;
	Oid			handler = InvalidOid;

	/* No schema or table: a database where netbuf 1.0 is not updated yet. */
	if (!OidIsValid(schema))
		return InvalidOid;
	relid = get_relname_relid(NETBUF_OPS_TABLE, schema);
	if (!OidIsValid(relid))
		return InvalidOid;

	rel = table_open(relid, AccessShareLock);
	ScanKeyInit(&key, NETBUF_OPS_ATTNUM_OP, BTEqualStrategyNumber, F_CHAREQ,
				CharGetDatum((char) op));
	/* No index: a fresh MVCC snapshot, so the latest commit is seen. */
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, NETBUF_OPS_ATTNUM_HANDLER,
									 RelationGetDescr(rel), &isnull);

		if (!isnull)
			handler = DatumGetObjectId(d);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return handler;
}

/*
 * The handler of every op code without a C handler (handlers.c hands such
 * requests here): run the function registered in netbuf.ops with the
 * payload, the reply is exactly what it returns.  Runs in the request's
 * transaction, under its snapshot (serve.c).
 */
void
netbuf_sql_op_handle(const char *request, int nbytes, StringInfo reply)
{
	unsigned char op = (unsigned char) request[0];
	Oid			handler = netbuf_find_sql_op(op);
	HeapTuple	tuple;
	const char *problem;
	AclResult	aclresult;
	FmgrInfo	flinfo;
	LOCAL_FCINFO(fcinfo, 1);
	bytea	   *payload;
	bytea	   *result;
	Datum		d;

	if (!OidIsValid(handler))
		netbuf_unknown_op(op);

	/* Dropped or replaced since it was registered (regprocedure has no dependency). */
	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(handler));
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("netbuf: the handler of op code %s, function %u, no longer exists",
						netbuf_op_text(op), handler),
				 errhint("Register another with netbuf.register_op() or remove it with netbuf.unregister_op().")));
	problem = netbuf_handler_signature_problem((Form_pg_proc) GETSTRUCT(tuple));
	ReleaseSysCache(tuple);
	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("netbuf: function %s cannot handle op code %s: %s",
						format_procedure(handler), netbuf_op_text(op), problem)));

	aclresult = netbuf_proc_aclcheck(handler, GetUserId(), ACL_EXECUTE);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_FUNCTION, get_func_name(handler));
	InvokeFunctionExecuteHook(handler);

	payload = (bytea *) palloc(VARHDRSZ + nbytes - 1);
	SET_VARSIZE(payload, VARHDRSZ + nbytes - 1);
	memcpy(VARDATA(payload), request + 1, nbytes - 1);

	fmgr_info(handler, &flinfo);
	InitFunctionCallInfoData(*fcinfo, &flinfo, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = PointerGetDatum(payload);
	fcinfo->args[0].isnull = false;
	d = FunctionCallInvoke(fcinfo);

	if (fcinfo->isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("netbuf: function %s, the handler of op code %s, returned NULL",
						format_procedure(handler), netbuf_op_text(op)),
				 errdetail("A reply must hold at least one byte.")));
	result = DatumGetByteaPP(d);
	if (VARSIZE_ANY_EXHDR(result) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("netbuf: function %s, the handler of op code %s, returned an empty bytea",
						format_procedure(handler), netbuf_op_text(op)),
				 errdetail("libpq cannot deliver an empty CopyData message; the client would wait forever.")));
	appendBinaryStringInfo(reply, VARDATA_ANY(result), VARSIZE_ANY_EXHDR(result));
}

