/*-------------------------------------------------------------------------
 *
 * direct_io.c
 *	  The serving backend's client socket below pqcomm: large messages
 *	  straight from and to the socket, and leaving when the client is gone.
 *
 * Messages at least NB_DIRECT_IO_MIN_SIZE bytes long skip pqcomm's 8 kB
 * buffers: a 1 MiB request would otherwise take ~128 recv() calls and one
 * more copy, a 1 MiB reply one more copy into pqcomm's send buffer.  The
 * serve loop (serve.c) decides when; this file only moves the bytes, and
 * only on a plain socket (TLS and GSSAPI encryption need pqcomm's layer).
 *
 * IDENTIFICATION
 *	  c_shim/primary/direct_io.c
 *
 *-------------------------------------------------------------------------
 */
#include "internal.h"

#include <sys/socket.h>

#include "libpq/libpq.h"
#include "libpq/libpq-be.h"
#include "miscadmin.h"
#include "port/pg_bswap.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"

/* The client is gone: leave without writing to its socket (cf. WalSndShutdown). */
void
netbuf_client_gone(void)
{
	whereToSendOutput = DestNone;
	proc_exit(0);
}

/* Read exactly len bytes from the client socket (waits; serves termination). */
static void
netbuf_recv_exactly(char *dst, size_t len)
{
	MyProcPort->noblock = false;
	while (len > 0)
	{
		ssize_t		n = secure_read(MyProcPort, dst, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			netbuf_client_gone();
		dst += n;
		len -= n;
	}
}

/* Write exactly len bytes to the client socket (waits; serves termination). */
static void
netbuf_send_exactly(const char *src, size_t len)
{
	MyProcPort->noblock = false;
	while (len > 0)
	{
		ssize_t		n = secure_write(MyProcPort, unconstify(char *, src), len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			netbuf_client_gone();
		src += n;
		len -= n;
	}
}

/* Is the connection unencrypted, so that the socket carries protocol bytes? */
static bool
netbuf_plain_socket(void)
{
	if (MyProcPort->ssl_in_use)
		return false;
#ifdef ENABLE_GSS
	if (MyProcPort->gss != NULL && MyProcPort->gss->enc)
		return false;
#endif
	return true;
}

/*
 * After a large request, take the next one straight from the socket into
 * the request buffer.  Only when pqcomm holds no input (so nothing is read
 * out of order), only for CopyData of NB_DIRECT_IO_MIN_SIZE bytes up to
 * netbuf.max_message_size, and only on a plain socket: the header is peeked
 * first, and anything else is left to pqcomm untouched.  Returns whether it
 * read a message.
 */
bool
netbuf_read_large_request(StringInfo request)
{
	char		header[5];
	uint32		netlen;
	int64		len;

	if (pq_buffer_has_data() || !netbuf_plain_socket())
		return false;
	if (recv(MyProcPort->sock, header, sizeof(header), MSG_PEEK | MSG_DONTWAIT) != sizeof(header) ||
		header[0] != 'd')
		return false;
	memcpy(&netlen, header + 1, sizeof(netlen));
	len = (int64) pg_ntoh32(netlen) - 4;
	if (len < NB_DIRECT_IO_MIN_SIZE || len > netbuf_max_message_size)
		return false;

	/*
	 * Allocate before consuming anything: an out-of-memory ERROR here leaves
	 * the message unread, so the session stays in protocol sync.
	 */
	enlargeStringInfo(request, (int) len);

	/* As in netbuf_read_message (serve.c): no ERROR while the message is half read. */
	HOLD_CANCEL_INTERRUPTS();
	netbuf_recv_exactly(header, sizeof(header));
	netbuf_recv_exactly(request->data, len);
	request->len = (int) len;
	request->data[len] = '\0';
	RESUME_CANCEL_INTERRUPTS();
	return true;
}

/* Send a large reply without copying it into pqcomm's send buffer. */
void
netbuf_send_large_reply(StringInfo reply)
{
	char		header[5];
	uint32		netlen = pg_hton32((uint32) reply->len + 4);

	/* Replies queued before this one go first. */
	if (pq_flush() != 0)
		netbuf_client_gone();
	header[0] = 'd';
	memcpy(header + 1, &netlen, sizeof(netlen));
	netbuf_send_exactly(header, sizeof(header));
	netbuf_send_exactly(reply->data, reply->len);
}
