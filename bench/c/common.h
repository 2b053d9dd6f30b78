/*
 * bench/c/common.h -- what the three baseline programs share: errors,
 * option parsing, clocks, latency statistics, the serving process's CPU
 * time, and the one JSON line each run prints.
 *
 * Everything is static inline so that a program which does not use a helper
 * still builds with -Wall -Werror.
 */
#ifndef NETBUF_BENCH_COMMON_H
#define NETBUF_BENCH_COMMON_H

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

/* Set by main() to argv[0]'s base name, for messages. */
static const char *progname = "bench";

/* Print "prog: message" on stderr and exit 1. */
__attribute__((format(printf, 1, 2), noreturn)) static inline void
die(const char *fmt, ...)
{
	char		buf[4096];
	size_t		n;
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* libpq's messages end in a newline: one line break, not two. */
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	fprintf(stderr, "%s: %s\n", progname, buf);
	exit(1);
}

static inline void *
xmalloc(size_t n)
{
	void	   *p = malloc(n ? n : 1);

	if (p == NULL)
		die("out of memory (%zu bytes)", n);
	return p;
}

/* A whole decimal number in [min, max], or die naming the option. */
static inline long
parse_long(const char *s, const char *opt, long min, long max)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		die("%s: expected an integer in [%ld, %ld], got \"%s\"", opt, min, max, s);
	return v;
}

/* CLOCK_MONOTONIC in ns: immune to wall-clock steps. */
static inline int64_t
now_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		die("clock_gettime: %s", strerror(errno));
	return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * ns the task has spent on a CPU: first field of /proc/<pid>/schedstat.
 * -1 if unreadable (a server on another host, no schedstats): the JSON then
 * says null rather than a made-up figure.
 */
static inline int64_t
cpu_ns_of(pid_t pid)
{
	char		path[64];
	long long	ns;
	FILE	   *f;
	int			n;

	snprintf(path, sizeof(path), "/proc/%ld/schedstat", (long) pid);
	f = fopen(path, "r");
	if (f == NULL)
	{
		fprintf(stderr, "%s: warning: cannot read %s (%s): no server CPU figure\n",
				progname, path, strerror(errno));
		return -1;
	}
	n = fscanf(f, "%lld", &ns);
	fclose(f);
	return n == 1 ? (int64_t) ns : -1;
}

/*
 * Default message count when --iterations is not given: about 256 MB each
 * way, at least 256 and at most 20000 messages, so that a sweep over
 * payloads takes seconds, not minutes.
 */
static inline long
default_iterations(long payload)
{
	long		n = (256L << 20) / (payload > 0 ? payload : 1);

	return n < 256 ? 256 : n > 20000 ? 20000 : n;
}

static inline int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

/* Latency summary of n samples in us; sorts them. Nearest-rank percentiles. */
struct stats
{
	double		p50,
				p99,
				mean;
};

static inline struct stats
summarize(double *us, long n)
{
	struct stats s = {0, 0, 0};
	double		sum = 0;

	if (n <= 0)
		return s;
	qsort(us, n, sizeof(double), cmp_double);
	for (long i = 0; i < n; i++)
		sum += us[i];
	s.p50 = us[(n * 50 + 99) / 100 - 1];
	s.p99 = us[(n * 99 + 99) / 100 - 1];
	s.mean = sum / n;
	return s;
}

/*
 * The one JSON object of a run, on one line.  msgs and wall_ns give the
 * throughput: msgs_per_s is messages per second of total loop wall time,
 * mb_per_s is payload bytes (10^6) per second in one direction.
 * payload < 0 prints null for payload and mb_per_s (connection rows).
 * server_cpu_ns < 0 omits server_cpu_us_per_msg (-2) or prints null (-1).
 */
static inline void
print_result(const char *row, const char *transport, long payload, long depth,
			 long msgs, struct stats s, int64_t wall_ns, int64_t server_cpu_ns)
{
	double		secs = wall_ns / 1e9;

	printf("{\"row\": \"%s\", \"transport\": \"%s\", ", row, transport);
	if (payload >= 0)
		printf("\"payload\": %ld, ", payload);
	else
		printf("\"payload\": null, ");
	printf("\"depth\": %ld, \"iterations\": %ld, \"p50_us\": %.3f, \"p99_us\": %.3f, "
		   "\"mean_us\": %.3f, \"msgs_per_s\": %.1f, ",
		   depth, msgs, s.p50, s.p99, s.mean, msgs / secs);
	if (payload >= 0)
		printf("\"mb_per_s\": %.3f", (double) msgs * payload / secs / 1e6);
	else
		printf("\"mb_per_s\": null");
	if (server_cpu_ns >= 0)
		printf(", \"server_cpu_us_per_msg\": %.3f", server_cpu_ns / 1e3 / msgs);
	else if (server_cpu_ns == -1)
		printf(", \"server_cpu_us_per_msg\": null");
	printf("}\n");
	if (fflush(stdout) != 0)
		die("writing stdout: %s", strerror(errno));
}

/* Big-endian 32-bit put/get: sequence numbers and frame lengths. */
static inline void
put_be32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static inline uint32_t
get_be32(const unsigned char *p)
{
	return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

#endif
