/*-------------------------------------------------------------------------
 *
 * wait_events.c
 *	  What pg_stat_activity.wait_event shows while netbuf sleeps.
 *
 * From PostgreSQL 17 an extension can name its own wait events
 * (WaitEventExtensionNew), so a standby backend blocked on the primary shows
 * NetbufRecv rather than the anonymous "Extension", and a serving backend
 * shows NetbufServeRecv rather than ClientRead, which every idle session
 * shows.  Before 17 the generic events stay.
 *
 * The names are registered lazily, by the first backend that waits for
 * each, not in _PG_init: libnetbuf may be loaded by the postmaster
 * (shared_preload_libraries), where the shared hash of names cannot be
 * written, and a backend that never waits need not register anything.
 *
 * IDENTIFICATION
 *	  c_shim/common/wait_events.c
 *
 *-------------------------------------------------------------------------
 */
#include "internal.h"

#include "utils/wait_event.h"

#ifdef NETBUF_HAVE_CUSTOM_WAIT_EVENTS

/* Indexed by NetbufWait; pg_stat_activity shows these. */
static const char *const netbuf_wait_names[NETBUF_WAIT_COUNT] = {
	[NETBUF_WAIT_CONNECT] = "NetbufConnect",
	[NETBUF_WAIT_SEND] = "NetbufSend",
	[NETBUF_WAIT_RECV] = "NetbufRecv",
	[NETBUF_WAIT_SERVE_RECV] = "NetbufServeRecv",
	[NETBUF_WAIT_SERVE_SEND] = "NetbufServeSend",
};

uint32
netbuf_wait_event(NetbufWait which)
{
	/* 0 is no extension event (PG_WAIT_EXTENSION's class is not 0). */
	static uint32 events[NETBUF_WAIT_COUNT];

	Assert(which >= 0 && which < NETBUF_WAIT_COUNT);
	if (events[which] == 0)
		events[which] = WaitEventExtensionNew(netbuf_wait_names[which]);
	return events[which];
}

#else							/* PostgreSQL 14 to 16 */

uint32
netbuf_wait_event(NetbufWait which)
{
	switch (which)
	{
		case NETBUF_WAIT_SERVE_RECV:
			return WAIT_EVENT_CLIENT_READ;
		case NETBUF_WAIT_SERVE_SEND:
			return WAIT_EVENT_CLIENT_WRITE;
		default:
			return PG_WAIT_EXTENSION;
	}
}

#endif
