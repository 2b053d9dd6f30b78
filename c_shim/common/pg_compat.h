/*-------------------------------------------------------------------------
 *
 * pg_compat.h
 *	  What differs between the PostgreSQL majors netbuf builds against
 *	  (14 to 18), in one place.
 *
 * The C files are written against the newest API where a name is only
 * spelled differently, and against the oldest where a feature is new; each
 * #if here says which major changed what.  Where a whole mechanism differs
 * rather than a name, the file that has it tests a NETBUF_HAVE_* macro
 * defined here, so that every version number is in this file.
 *
 * IDENTIFICATION
 *	  c_shim/common/pg_compat.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef NETBUF_PG_COMPAT_H
#define NETBUF_PG_COMPAT_H

#include "postgres.h"
#include "fmgr.h"
#include "utils/timeout.h"

#if PG_VERSION_NUM < 140000
#error "netbuf needs PostgreSQL 14 or later"
#endif

/*
 * 18 removed pg_attribute_noreturn(), which went after a declaration, for
 * pg_noreturn, which goes before it (C11 _Noreturn).  Before 18, the
 * attribute placed before the declaration means the same to gcc and clang.
 */
#ifndef pg_noreturn
#define pg_noreturn pg_attribute_noreturn()
#endif

/*
 * The module magic block.  18 made PG_MODULE_MAGIC_DATA function-like and
 * added the module's name and version, which pg_get_loaded_modules() shows.
 * NETBUF_VERSION is Cargo's package version (build.rs).
 */
#if PG_VERSION_NUM >= 180000
#define NETBUF_MODULE_MAGIC_DATA \
	PG_MODULE_MAGIC_DATA(.name = "netbuf", .version = NETBUF_VERSION)
#else
#define NETBUF_MODULE_MAGIC_DATA PG_MODULE_MAGIC_DATA
#endif

/* 15 moved PrimaryConnInfo (primary_conninfo) to xlogrecovery.h. */
#if PG_VERSION_NUM >= 150000
#include "access/xlogrecovery.h"
#else
#include "access/xlog.h"
#endif

/* 15 renamed EmitWarningsOnPlaceholders (and made it reserve the prefix). */
#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix) EmitWarningsOnPlaceholders(prefix)
#endif

/*
 * 17 lets an extension name its own wait events (WaitEventExtensionNew):
 * common/wait_events.c shows NetbufRecv and the like instead of the generic
 * events.
 */
#if PG_VERSION_NUM >= 170000
#define NETBUF_HAVE_CUSTOM_WAIT_EVENTS
#endif

/*
 * 17 lets an extension's resources be tracked by resource owners like the
 * core's (ResourceOwnerDesc, ResourceOwnerEnlarge/Remember/Forget).  Before,
 * standby/ownership.c registers a release callback that finds the channels
 * of the owner being released itself.
 */
#if PG_VERSION_NUM >= 170000
#define NETBUF_HAVE_RESOWNER_DESC
#endif

/* 17 replaced pq_buffer_has_data() with pq_buffer_remaining_data(). */
#if PG_VERSION_NUM >= 170000
#define pq_buffer_has_data() (pq_buffer_remaining_data() > 0)
#endif

/*
 * 16 replaced the per-object-type ACL and ownership checks with
 * object_aclcheck() and object_ownercheck() (utils/acl.h).
 */
#if PG_VERSION_NUM >= 160000
#define netbuf_proc_aclcheck(proc, role, mode) \
	object_aclcheck(ProcedureRelationId, (proc), (role), (mode))
#define netbuf_extension_ownercheck(ext, role) \
	object_ownercheck(ExtensionRelationId, (ext), (role))
#else
#define netbuf_proc_aclcheck(proc, role, mode) pg_proc_aclcheck((proc), (role), (mode))
#define netbuf_extension_ownercheck(ext, role) pg_extension_ownercheck((ext), (role))
#endif

/* 17 numbers a backend's PGPROC with MyProcNumber (before: MyProc->pgprocno). */
#if PG_VERSION_NUM >= 170000
#define NETBUF_MY_PROC_NUMBER() (MyProcNumber)
#else
#define NETBUF_MY_PROC_NUMBER() (MyProc->pgprocno)
#endif

/*
 * Shared memory for the serving backends' counters (primary/
 * serving_stats.c).  17 has the DSM registry (GetNamedDSMSegment), which
 * needs no preload.  Before, only shared_preload_libraries can reserve
 * shared memory; 15 added shmem_request_hook to do it in (14 reserves it in
 * _PG_init, before MaxBackends is computed).
 */
#if PG_VERSION_NUM >= 170000
#define NETBUF_HAVE_DSM_REGISTRY
#elif PG_VERSION_NUM >= 150000
#define NETBUF_HAVE_SHMEM_REQUEST_HOOK
#endif

/*
 * The timeouts that the CALL of netbuf.serve() armed and that would end a
 * channel living longer than them: statement_timeout, armed once for the
 * CALL, and (17+) transaction_timeout, armed by every StartTransaction, so
 * also by SPI_commit.  A channel's requests are neither statements nor
 * transactions of the client's.  (The idle timeouts run only between client
 * commands, never during a CALL.)
 */
static inline void
netbuf_disarm_timeouts(void)
{
	if (get_timeout_active(STATEMENT_TIMEOUT))
		disable_timeout(STATEMENT_TIMEOUT, false);
#if PG_VERSION_NUM >= 170000
	if (get_timeout_active(TRANSACTION_TIMEOUT))
		disable_timeout(TRANSACTION_TIMEOUT, false);
#endif
}

#endif							/* NETBUF_PG_COMPAT_H */
