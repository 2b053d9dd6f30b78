/*-------------------------------------------------------------------------
 *
 * gucs.c
 *	  Every GUC of netbuf, of both sides, and their assign hooks.
 *
 * libnetbuf.so is the same module on the standby and on the primary, and
 * one setting can mean something on each (netbuf.max_message_size bounds
 * requests on the primary and replies on the standby), so the GUCs are
 * defined in one place, by _PG_init, rather than by the side that reads
 * them.  The values live in the exported variables; an assign hook passes a
 * value on to the Rust core where the Rust core needs it.
 *
 * IDENTIFICATION
 *	  c_shim/common/gucs.c
 *
 *-------------------------------------------------------------------------
 */
#include "internal.h"

#include <limits.h>

#include "libpq/libpq.h"
#include "utils/guc.h"
#include "utils/memutils.h"		/* MaxAllocSize, for PQ_LARGE_MESSAGE_LIMIT */

/*
 * boundary.h cannot include PostgreSQL's headers, so it writes the largest
 * message size out: it must stay the protocol layer's limit.
 */
StaticAssertDecl(NB_MAX_MESSAGE_SIZE_MAX == PQ_LARGE_MESSAGE_LIMIT,
				 "NB_MAX_MESSAGE_SIZE_MAX in boundary.h differs from PQ_LARGE_MESSAGE_LIMIT");

/*
 * netbuf.max_message_size: the largest request the primary accepts, and on
 * the standby the largest reply its channels accept.
 */
int			netbuf_max_message_size = NB_MAX_MESSAGE_SIZE_DEFAULT;

/*
 * netbuf.peer_timeout: how long a client that went silent (a network
 * partition: no FIN, no RST) may keep its serving backend, through TCP
 * keepalives and TCP_USER_TIMEOUT on the channel's socket.
 */
int			netbuf_peer_timeout = NB_PEER_TIMEOUT_DEFAULT_MS;

/*
 * netbuf.password_required: the standby's SQL functions (standby/sql_api.c)
 * refuse a non-superuser a channel that did not authenticate with a
 * password the caller gave, as dblink and postgres_fdw do.  Superuser-only
 * (PGC_SUSET), so that a superuser allows it per role with ALTER ROLE ...
 * SET netbuf.password_required = off.
 */
bool		netbuf_password_required = true;

/*
 * netbuf.log_channels: a LOG line when a channel opens and when it closes
 * (primary/serving_stats.c), as log_connections and log_disconnections.
 */
bool		netbuf_log_channels = false;

/* Developer GUC netbuf.debug_panic_at: where the Rust core should panic. */
static const struct config_enum_entry netbuf_panic_points[] = {
	{NB_PANIC_NAME_NONE, NB_PANIC_NONE, false},
	{NB_PANIC_NAME_CONNECT, NB_PANIC_CONNECT, false},
	{NB_PANIC_NAME_SEND, NB_PANIC_SEND, false},
	{NB_PANIC_NAME_RECV, NB_PANIC_RECV, false},
	{NB_PANIC_NAME_SERVE, NB_PANIC_SERVE, false},
	{NULL, 0, false}
};
static int	netbuf_debug_panic_at = NB_PANIC_NONE;

static void
netbuf_assign_panic_at(int newval, void *extra)
{
	nb_rust->set_panic_point((NbPanicPoint) newval);
}

static void
netbuf_assign_max_message_size(int newval, void *extra)
{
	/* New channels of this backend accept replies up to this size. */
	nb_rust->set_max_message_size(newval);
}

void
netbuf_define_gucs(void)
{
	DefineCustomEnumVariable("netbuf.debug_panic_at",
							 "Makes netbuf's Rust code panic at this point (for testing).",
							 "A panic must end as an ERROR, never as a backend crash.",
							 &netbuf_debug_panic_at,
							 NB_PANIC_NONE,
							 netbuf_panic_points,
							 PGC_SUSET,
							 GUC_NOT_IN_SAMPLE,
							 NULL, netbuf_assign_panic_at, NULL);
	DefineCustomIntVariable("netbuf.max_message_size",
							"Largest netbuf message accepted: requests on the primary, replies on the standby.",
							"A larger message is refused with an error before memory is allocated for it.",
							&netbuf_max_message_size,
							NB_MAX_MESSAGE_SIZE_DEFAULT,
							NB_MAX_MESSAGE_SIZE_MIN,
							NB_MAX_MESSAGE_SIZE_MAX,
							PGC_SUSET,
							GUC_UNIT_BYTE,
							NULL, netbuf_assign_max_message_size, NULL);
	DefineCustomIntVariable("netbuf.peer_timeout",
							"How long a serving backend waits on a client that went silent.",
							"Applied as TCP keepalives and tcp_user_timeout on the channel's socket; "
							"0 leaves the server's tcp_keepalives_* and tcp_user_timeout settings.",
							&netbuf_peer_timeout,
							NB_PEER_TIMEOUT_DEFAULT_MS,
							0,
							INT_MAX / 1000,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("netbuf.password_required",
							 "Whether a non-superuser's channel from SQL must authenticate with a password it gave.",
							 "Off lets the roles it is set for use primary_conninfo, the server's password file, "
							 "trust or peer authentication from netbuf.request; only a superuser can set it.",
							 &netbuf_password_required,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("netbuf.log_channels",
							 "Logs each netbuf channel served by this primary when it opens and when it closes.",
							 "The closing line gives the channel's duration, role, client and counts.",
							 &netbuf_log_channels,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
	MarkGUCPrefixReserved("netbuf");
}
