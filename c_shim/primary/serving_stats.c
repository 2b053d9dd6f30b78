/*-------------------------------------------------------------------------
 *
 * serving_stats.c
 *	  The serving backends of this primary in shared memory (the view
 *	  netbuf.serving), and netbuf.log_channels.
 *
 * A channel, as seen from the primary, is a client connection whose
 * backend runs CALL netbuf.serve(): it opens with the first CALL and closes
 * when the client ends the stream (CopyDone) or the backend exits.  An
 * ERROR ends the CALL but not the channel: the client's next request
 * starts a new CALL on the same connection, and the channel's counters go
 * on (so that its errors can be counted at all).  The counters live in
 * this backend's memory; while a CALL runs they are also published in the
 * backend's slot of shared memory, which is cleared when the CALL ends,
 * normally or by an ERROR, and when the backend exits.
 *
 * Shared memory: one slot per PGPROC, indexed by proc number, written only
 * by its backend.  Readers copy a slot under the changecount protocol of
 * PgBackendStatus (odd while being written), so they never see a torn
 * 64-bit counter or half of a row.  On PostgreSQL 17+ the array is a
 * segment of the DSM registry, created by whoever needs it first; on 14-16
 * it exists only if libnetbuf is in shared_preload_libraries (serving works
 * without it, untracked, and the view says why it is empty with an ERROR).
 *
 * IDENTIFICATION
 *	  c_shim/primary/serving_stats.c
 *
 *-------------------------------------------------------------------------
 */
#include "internal.h"

#include "access/htup_details.h"
#include "funcapi.h"
#include "libpq/libpq-be.h"
#include "miscadmin.h"
#include "postmaster/autovacuum.h"
#include "replication/walsender.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#ifdef NETBUF_HAVE_DSM_REGISTRY
#include "storage/dsm_registry.h"
#endif

#define NETBUF_SERVING_NAME "netbuf serving backends"

/* A slot's state column. */
#define NETBUF_SERVING_IDLE		0	/* waiting for a request */
#define NETBUF_SERVING_ACTIVE	1	/* answering requests */

#define NETBUF_CLIENT_ADDR_LEN	64

/* What a channel counts; in a slot and in the owner's own memory. */
typedef struct NetbufChannelCounts
{
	uint64		requests;
	uint64		replies;
	uint64		errors;
	uint64		bytes_in;
	uint64		bytes_out;
	int			last_op;		/* -1: none yet */
	int			state;			/* NETBUF_SERVING_* */
} NetbufChannelCounts;

typedef struct NetbufServingSlot
{
	/* Even when stable; the owner makes it odd while it writes. */
	uint32		changecount;
	int			pid;			/* 0: free */
	Oid			roleid;
	Oid			dbid;
	TimestampTz opened_at;
	NetbufChannelCounts counts;
	char		client_addr[NETBUF_CLIENT_ADDR_LEN];
	int			client_port;	/* -1: none (Unix socket) */
	char		application_name[NAMEDATALEN];
} NetbufServingSlot;

typedef struct NetbufServingShared
{
	int			nslots;
	NetbufServingSlot slots[FLEXIBLE_ARRAY_MEMBER];
} NetbufServingShared;

/* The shared array once attached; NULL on 14-16 without the preload. */
static NetbufServingShared *netbuf_serving = NULL;

/* This backend's channel. */
static struct
{
	bool		open;			/* a channel is open (between CALLs too) */
	bool		published;		/* a CALL runs and its slot is filled */
	TimestampTz opened_at;
	NetbufChannelCounts counts;
	char		role[NAMEDATALEN];
	char		client[NETBUF_CLIENT_ADDR_LEN + 16];
} netbuf_channel;

static bool netbuf_exit_callback_registered = false;

/*
 * Slots: one per PGPROC a client backend can have.  14 computes it here
 * because MaxBackends is not known yet when _PG_init reserves the memory;
 * this is InitializeMaxBackends' sum.
 */
static int
netbuf_serving_nslots(void)
{
#if PG_VERSION_NUM >= 150000
	return MaxBackends;
#else
	return MaxConnections + autovacuum_max_workers + 1 + max_worker_processes + max_wal_senders;
#endif
}

static Size
netbuf_serving_size(int nslots)
{
	return add_size(offsetof(NetbufServingShared, slots),
					mul_size(nslots, sizeof(NetbufServingSlot)));
}

static void
netbuf_serving_init_struct(void *ptr)
{
	NetbufServingShared *shared = (NetbufServingShared *) ptr;
	int			nslots = netbuf_serving_nslots();

	memset(shared, 0, netbuf_serving_size(nslots));
	shared->nslots = nslots;
}

#ifdef NETBUF_HAVE_DSM_REGISTRY

/* 17+: the DSM registry's segment, created by the first backend to ask. */
static bool
netbuf_serving_attach(void)
{
	bool		found;

	if (netbuf_serving == NULL)
		netbuf_serving = GetNamedDSMSegment(NETBUF_SERVING_NAME,
											netbuf_serving_size(netbuf_serving_nslots()),
											netbuf_serving_init_struct, &found);
	return true;
}

void
netbuf_serving_shmem_init(void)
{
	/* Nothing to reserve: the segment is made on first use. */
}

#else							/* 14-16: shared_preload_libraries only */

static shmem_startup_hook_type netbuf_prev_shmem_startup_hook = NULL;

#ifdef NETBUF_HAVE_SHMEM_REQUEST_HOOK
static shmem_request_hook_type netbuf_prev_shmem_request_hook = NULL;

static void
netbuf_serving_shmem_request(void)
{
	if (netbuf_prev_shmem_request_hook)
		netbuf_prev_shmem_request_hook();
	RequestAddinShmemSpace(netbuf_serving_size(netbuf_serving_nslots()));
}
#endif

static void
netbuf_serving_shmem_startup(void)
{
	bool		found;
	Size		size = netbuf_serving_size(netbuf_serving_nslots());

	if (netbuf_prev_shmem_startup_hook)
		netbuf_prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	netbuf_serving = ShmemInitStruct(NETBUF_SERVING_NAME, size, &found);
	if (!found)
		netbuf_serving_init_struct(netbuf_serving);
	LWLockRelease(AddinShmemInitLock);
}

static bool
netbuf_serving_attach(void)
{
	return netbuf_serving != NULL;
}

/* From _PG_init: reserve the array when loaded by shared_preload_libraries. */
void
netbuf_serving_shmem_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
#ifdef NETBUF_HAVE_SHMEM_REQUEST_HOOK
	netbuf_prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = netbuf_serving_shmem_request;
#else
	RequestAddinShmemSpace(netbuf_serving_size(netbuf_serving_nslots()));
#endif
	netbuf_prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = netbuf_serving_shmem_startup;
}

#endif							/* NETBUF_HAVE_DSM_REGISTRY */

/* This backend's slot, or NULL when untracked. */
static NetbufServingSlot *
netbuf_my_slot(void)
{
	int			procno;

	if (netbuf_serving == NULL || MyProc == NULL)
		return NULL;
	procno = NETBUF_MY_PROC_NUMBER();
	if (procno < 0 || procno >= netbuf_serving->nslots)
		return NULL;
	return &netbuf_serving->slots[procno];
}

/*
 * The owner's side of the changecount protocol: odd while writing, with
 * barriers so that a reader that sees the same even count before and after
 * its copy has a consistent row.
 */
static inline void
netbuf_slot_write_begin(NetbufServingSlot *slot)
{
	slot->changecount++;
	pg_write_barrier();
}

static inline void
netbuf_slot_write_end(NetbufServingSlot *slot)
{
	pg_write_barrier();
	slot->changecount++;
}

/* Copy this backend's counters to its slot, while a CALL runs. */
static void
netbuf_publish_counts(void)
{
	NetbufServingSlot *slot;

	if (!netbuf_channel.published || (slot = netbuf_my_slot()) == NULL)
		return;
	netbuf_slot_write_begin(slot);
	slot->counts = netbuf_channel.counts;
	netbuf_slot_write_end(slot);
}

static void
netbuf_clear_slot(void)
{
	NetbufServingSlot *slot = netbuf_my_slot();

	netbuf_channel.published = false;
	if (slot == NULL)
		return;
	netbuf_slot_write_begin(slot);
	slot->pid = 0;
	netbuf_slot_write_end(slot);
}

/* netbuf.log_channels: the line a closed channel leaves, as log_disconnections'. */
static void
netbuf_log_channel_closed(const char *why)
{
	long		secs;
	int			usecs;
	int			msecs;
	int			hours;
	int			minutes;

	if (!netbuf_log_channels)
		return;
	TimestampDifference(netbuf_channel.opened_at, GetCurrentTimestamp(), &secs, &usecs);
	msecs = usecs / 1000;
	hours = secs / SECS_PER_HOUR;
	secs %= SECS_PER_HOUR;
	minutes = secs / SECS_PER_MINUTE;
	secs %= SECS_PER_MINUTE;
	ereport(LOG,
			(errmsg("netbuf channel closed (%s): duration: %d:%02d:%02d.%03d role=%s client=%s "
					"requests=" UINT64_FORMAT " replies=" UINT64_FORMAT " errors=" UINT64_FORMAT
					" bytes_in=" UINT64_FORMAT " bytes_out=" UINT64_FORMAT,
					why, hours, minutes, (int) secs, msecs,
					netbuf_channel.role, netbuf_channel.client,
					netbuf_channel.counts.requests, netbuf_channel.counts.replies,
					netbuf_channel.counts.errors, netbuf_channel.counts.bytes_in,
					netbuf_channel.counts.bytes_out),
			 errhidestmt(true), errhidecontext(true)));
}

/* A backend that exits with a channel open (client gone, terminated ...). */
static void
netbuf_serving_exit(int code, Datum arg)
{
	netbuf_clear_slot();
	if (netbuf_channel.open)
	{
		netbuf_channel.open = false;
		netbuf_log_channel_closed("backend exit");
	}
}

/*
 * CALL netbuf.serve() begins: open the channel if this is its first CALL,
 * and publish it.
 */
void
netbuf_serving_call_begin(void)
{
	NetbufServingSlot *slot;

	if (!netbuf_exit_callback_registered)
	{
		before_shmem_exit(netbuf_serving_exit, (Datum) 0);
		netbuf_exit_callback_registered = true;
	}

	if (!netbuf_channel.open)
	{
		const char *role = GetUserNameFromId(GetUserId(), true);

		memset(&netbuf_channel.counts, 0, sizeof(netbuf_channel.counts));
		netbuf_channel.counts.last_op = -1;
		netbuf_channel.opened_at = GetCurrentTimestamp();
		strlcpy(netbuf_channel.role, role ? role : "?", sizeof(netbuf_channel.role));
		if (MyProcPort == NULL || MyProcPort->remote_host == NULL)
			strlcpy(netbuf_channel.client, "?", sizeof(netbuf_channel.client));
		else if (MyProcPort->remote_port == NULL || MyProcPort->remote_port[0] == '\0')
			strlcpy(netbuf_channel.client, MyProcPort->remote_host, sizeof(netbuf_channel.client));
		else
			snprintf(netbuf_channel.client, sizeof(netbuf_channel.client), "%s port=%s",
					 MyProcPort->remote_host, MyProcPort->remote_port);
		netbuf_channel.open = true;
		if (netbuf_log_channels)
			ereport(LOG,
					(errmsg("netbuf channel opened: role=%s client=%s application_name=%s",
							netbuf_channel.role, netbuf_channel.client,
							application_name ? application_name : ""),
					 errhidestmt(true), errhidecontext(true)));
	}
	netbuf_channel.counts.state = NETBUF_SERVING_IDLE;

	if (!netbuf_serving_attach() || (slot = netbuf_my_slot()) == NULL)
		return;
	netbuf_slot_write_begin(slot);
	slot->pid = MyProcPid;
	slot->roleid = GetUserId();
	slot->dbid = MyDatabaseId;
	slot->opened_at = netbuf_channel.opened_at;
	slot->counts = netbuf_channel.counts;
	strlcpy(slot->client_addr,
			MyProcPort && MyProcPort->remote_host ? MyProcPort->remote_host : "",
			sizeof(slot->client_addr));
	slot->client_port = (MyProcPort && MyProcPort->remote_port && MyProcPort->remote_port[0]) ?
		atoi(MyProcPort->remote_port) : -1;
	strlcpy(slot->application_name, application_name ? application_name : "",
			sizeof(slot->application_name));
	netbuf_slot_write_end(slot);
	netbuf_channel.published = true;
}

/*
 * The CALL ends: clean (the client sent CopyDone: the channel closes) or
 * by an ERROR (counted; the channel stays open for the next CALL).
 */
void
netbuf_serving_call_end(bool clean)
{
	if (!clean)
		netbuf_channel.counts.errors++;
	netbuf_clear_slot();
	if (clean && netbuf_channel.open)
	{
		netbuf_channel.open = false;
		netbuf_log_channel_closed("client ended the stream");
	}
}

void
netbuf_serving_request(unsigned char op, int nbytes)
{
	netbuf_channel.counts.requests++;
	netbuf_channel.counts.bytes_in += (uint64) nbytes;
	netbuf_channel.counts.last_op = op;
	netbuf_channel.counts.state = NETBUF_SERVING_ACTIVE;
	netbuf_publish_counts();
}

void
netbuf_serving_reply(int nbytes)
{
	netbuf_channel.counts.replies++;
	netbuf_channel.counts.bytes_out += (uint64) nbytes;
	netbuf_publish_counts();
}

void
netbuf_serving_state(bool running)
{
	netbuf_channel.counts.state = running ? NETBUF_SERVING_ACTIVE : NETBUF_SERVING_IDLE;
	netbuf_publish_counts();
}

/*
 * netbuf.serving_backends(): the rows of the view netbuf.serving.
 */
#define NETBUF_SERVING_COLS 14

Datum
netbuf_shim_serving_backends(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc	tupdesc;
	Tuplestorestate *tupstore;
	MemoryContext per_query;
	MemoryContext old;

	if (!netbuf_serving_attach())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("netbuf.serving needs libnetbuf in shared_preload_libraries on PostgreSQL %d",
						PG_VERSION_NUM / 10000),
				 errdetail("Before PostgreSQL 17 an extension can have shared memory only when preloaded; channels are served without it, but not counted."),
				 errhint("Add 'libnetbuf' to shared_preload_libraries and restart the server.")));

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		(rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("netbuf.serving_backends() must be called where a set is accepted")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "netbuf.serving_backends(): return type must be a row type");

	per_query = rsinfo->econtext->ecxt_per_query_memory;
	old = MemoryContextSwitchTo(per_query);
	tupdesc = CreateTupleDescCopy(tupdesc);
	tupstore = tuplestore_begin_heap(true, false, work_mem);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = tupstore;
	rsinfo->setDesc = tupdesc;
	MemoryContextSwitchTo(old);

	for (int i = 0; i < netbuf_serving->nslots; i++)
	{
		volatile NetbufServingSlot *shared = &netbuf_serving->slots[i];
		NetbufServingSlot row;
		Datum		values[NETBUF_SERVING_COLS];
		bool		nulls[NETBUF_SERVING_COLS];
		int			col = 0;

		/* Copy until the owner was not writing during the copy. */
		for (;;)
		{
			uint32		before = shared->changecount;

			pg_read_barrier();
			memcpy(&row, (const void *) shared, sizeof(row));
			pg_read_barrier();
			if (before == shared->changecount && (before & 1) == 0)
				break;
			CHECK_FOR_INTERRUPTS();
		}
		if (row.pid == 0)
			continue;
		row.client_addr[sizeof(row.client_addr) - 1] = '\0';
		row.application_name[sizeof(row.application_name) - 1] = '\0';

		memset(nulls, 0, sizeof(nulls));
		values[col++] = Int32GetDatum(row.pid);
		values[col++] = ObjectIdGetDatum(row.roleid);
		values[col++] = ObjectIdGetDatum(row.dbid);
		if (row.client_addr[0] == '\0' || strcmp(row.client_addr, "[local]") == 0)
			nulls[col++] = true;
		else
			values[col++] = CStringGetTextDatum(row.client_addr);
		if (row.client_port < 0)
			nulls[col++] = true;
		else
			values[col++] = Int32GetDatum(row.client_port);
		values[col++] = CStringGetTextDatum(row.application_name);
		values[col++] = TimestampTzGetDatum(row.opened_at);
		values[col++] = Int64GetDatum((int64) row.counts.requests);
		values[col++] = Int64GetDatum((int64) row.counts.replies);
		values[col++] = Int64GetDatum((int64) row.counts.errors);
		values[col++] = Int64GetDatum((int64) row.counts.bytes_in);
		values[col++] = Int64GetDatum((int64) row.counts.bytes_out);
		if (row.counts.last_op < 0)
			nulls[col++] = true;
		else
			values[col++] = CharGetDatum((char) row.counts.last_op);
		values[col++] = CStringGetTextDatum(row.counts.state == NETBUF_SERVING_ACTIVE ? "active" : "idle");
		Assert(col == NETBUF_SERVING_COLS);
		tuplestore_putvalues(tupstore, tupdesc, values, nulls);
	}
	return (Datum) 0;
}
