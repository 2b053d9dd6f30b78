/*
 * raw_pingpong -- the floor: a request/reply over a bare socket between two
 * processes, with nothing of PostgreSQL in the way.  A forked child echoes
 * each frame (4-byte big-endian length + payload) back whole; the parent
 * times each round trip.
 *
 *   raw_pingpong [--transport unix|tcp] [--payload BYTES] [--iterations N]
 *                [--child-cpu CPU]
 *
 * unix is a socketpair (what a unix-domain connection is once accepted);
 * tcp is a loopback connection on 127.0.0.1, ephemeral port, TCP_NODELAY on
 * both ends as PostgreSQL and libpq set it.  --child-cpu pins the echoing
 * child to one CPU, as `make bench` pins the servers.  Prints one JSON object on
 * stdout; server_cpu_us_per_msg is the echoing child's CPU time.
 */
#define _GNU_SOURCE				/* sched_setaffinity, CPU_SET */
#include "common.h"

#include <getopt.h>
#include <sched.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define WARMUP 200

/* Write all n bytes; sockets may take less than asked. 0 or -1 (errno). */
static int
write_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0)
	{
		ssize_t		w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= w;
	}
	return 0;
}

/* Read exactly n bytes: 1 done, 0 EOF before the first byte, -1 error/short. */
static int
read_full(int fd, unsigned char *p, size_t n)
{
	size_t		got = 0;

	while (got < n)
	{
		ssize_t		r = read(fd, p + got, n - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
		{
			if (got == 0)
				return 0;
			errno = EPROTO;		/* peer closed mid-frame */
			return -1;
		}
		got += r;
	}
	return 1;
}

static void
set_nodelay(int fd)
{
	int			one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
		die("setsockopt(TCP_NODELAY): %s", strerror(errno));
}

/* The child: echo frames until the parent closes. Never returns. */
static void
echo_loop(int fd, size_t cap, int cpu)
{
	unsigned char *buf = xmalloc(4 + cap);

	if (cpu >= 0)
	{
		cpu_set_t	set;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) != 0)
		{
			fprintf(stderr, "%s: echo child: sched_setaffinity: %s\n", progname, strerror(errno));
			_exit(1);
		}
	}

	for (;;)
	{
		int			r = read_full(fd, buf, 4);
		uint32_t	len;

		if (r == 0)
			_exit(0);
		if (r < 0)
			break;
		len = get_be32(buf);
		if (len > cap)
		{
			errno = EMSGSIZE;
			break;
		}
		if (read_full(fd, buf + 4, len) != 1 || write_all(fd, buf, 4 + len) != 0)
			break;
	}
	fprintf(stderr, "%s: echo child: %s\n", progname, strerror(errno));
	_exit(1);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"transport", required_argument, NULL, 't'},
		{"payload", required_argument, NULL, 'p'},
		{"iterations", required_argument, NULL, 'n'},
		{"child-cpu", required_argument, NULL, 'C'},
		{NULL, 0, NULL, 0}
	};
	const char *transport = "unix";
	int			child_cpu = -1;
	long		payload = 16,
				iters = -1;
	unsigned char *req,
			   *rep;
	double	   *lat;
	int			fd,
				c,
				status;
	pid_t		child;
	int64_t		cpu0,
				cpu1,
				start,
				wall;

	progname = "raw_pingpong";
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
	{
		if (c == 't')
			transport = optarg;
		else if (c == 'p')
			payload = parse_long(optarg, "--payload", 0, 1L << 30);
		else if (c == 'n')
			iters = parse_long(optarg, "--iterations", 1, 100000000);
		else if (c == 'C')
			child_cpu = parse_long(optarg, "--child-cpu", 0, CPU_SETSIZE - 1);
		else
			die("usage: raw_pingpong [--transport unix|tcp] [--payload BYTES] [--iterations N] "
				"[--child-cpu CPU]");
	}
	if (optind != argc)
		die("unexpected argument \"%s\"", argv[optind]);
	if (iters < 0)
		iters = default_iterations(payload);

	/* A dead child must be an error message, not a silent SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);

	if (strcmp(transport, "unix") == 0)
	{
		int			sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
			die("socketpair: %s", strerror(errno));
		child = fork();
		if (child < 0)
			die("fork: %s", strerror(errno));
		if (child == 0)
		{
			close(sv[0]);
			echo_loop(sv[1], payload, child_cpu);
		}
		close(sv[1]);
		fd = sv[0];
	}
	else if (strcmp(transport, "tcp") == 0)
	{
		struct sockaddr_in addr = {.sin_family = AF_INET};
		socklen_t	alen = sizeof(addr);
		int			lfd = socket(AF_INET, SOCK_STREAM, 0);

		addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (lfd < 0 || bind(lfd, (struct sockaddr *) &addr, sizeof(addr)) != 0 ||
			listen(lfd, 1) != 0 ||
			getsockname(lfd, (struct sockaddr *) &addr, &alen) != 0)
			die("listening on 127.0.0.1: %s", strerror(errno));
		child = fork();
		if (child < 0)
			die("fork: %s", strerror(errno));
		if (child == 0)
		{
			int			cfd = socket(AF_INET, SOCK_STREAM, 0);

			close(lfd);
			if (cfd < 0 || connect(cfd, (struct sockaddr *) &addr, sizeof(addr)) != 0)
			{
				fprintf(stderr, "%s: echo child: connect: %s\n", progname, strerror(errno));
				_exit(1);
			}
			set_nodelay(cfd);
			echo_loop(cfd, payload, child_cpu);
		}
		fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			die("accept: %s", strerror(errno));
		close(lfd);
		set_nodelay(fd);
	}
	else
		die("--transport: expected unix or tcp, got \"%s\"", transport);

	/* Request: length, then payload whose first 4 bytes carry a sequence number. */
	req = xmalloc(4 + payload);
	rep = xmalloc(4 + payload);
	lat = xmalloc(sizeof(double) * iters);
	put_be32(req, payload);
	memset(req + 4, 'x', payload);

	cpu0 = start = 0;
	for (long i = -WARMUP; i < iters; i++)
	{
		int64_t		t0;

		if (i == 0)
		{
			cpu0 = cpu_ns_of(child);
			start = now_ns();
		}
		if (payload >= 4)
			put_be32(req + 4, (uint32_t) i);
		t0 = now_ns();
		if (write_all(fd, req, 4 + payload) != 0)
			die("write: %s", strerror(errno));
		c = read_full(fd, rep, 4 + payload);
		if (c != 1)
			die("read: %s", c == 0 ? "the echo child closed" : strerror(errno));
		if (i >= 0)
			lat[i] = (now_ns() - t0) / 1e3;
		/* Checked after the clock stops: the check is not the transport. */
		if (memcmp(req, rep, 4 + payload) != 0)
			die("reply %ld differs from its request", i);
	}
	wall = now_ns() - start;
	cpu1 = cpu_ns_of(child);

	/* EOF tells the child to exit; it must exit cleanly. */
	close(fd);
	if (waitpid(child, &status, 0) != child)
		die("waitpid: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("the echo child failed (status 0x%x)", status);

	print_result("raw_pingpong", transport, payload, 1, iters, summarize(lat, iters),
				 wall, cpu0 < 0 || cpu1 < 0 ? -1 : cpu1 - cpu0);
	return 0;
}
