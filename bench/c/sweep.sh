#!/bin/sh
# bench/c/sweep.sh -- run the C baselines over payloads, transports and
# depths against a throwaway PostgreSQL primary with CREATE EXTENSION netbuf,
# then stop it and remove its files.  One JSON object per line on stdout,
# progress on stderr.  Needs netbuf installed in $PG_CONFIG's PostgreSQL and
# the programs built (make -C bench/c).
#
# Environment: PG_CONFIG, BENCH_PORT (5499), BENCH_PAYLOADS ("16 1024 65536
# 1048576"), BENCH_DEPTHS ("1 64"), BENCH_ITERATIONS (each program's
# default: about 256 MB each way, 256..20000 messages), BENCH_CONNECTS (200).
# As root the server runs as the postgres OS user (or BENCH_OS_USER).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
bindir=$("${PG_CONFIG:-pg_config}" --bindir)
port=${BENCH_PORT:-5499}
payloads=${BENCH_PAYLOADS:-"16 1024 65536 1048576"}
depths=${BENCH_DEPTHS:-"1 64"}
connects=${BENCH_CONNECTS:-200}
iterations=${BENCH_ITERATIONS:+--iterations $BENCH_ITERATIONS}

for p in raw_pingpong libpq_echo libpq_select; do
	[ -x "$here/$p" ] || { echo "sweep: $here/$p is not built (make -C bench/c)" >&2; exit 1; }
done

# PostgreSQL refuses to run as root.
as_pg=
if [ "$(id -u)" = 0 ]; then
	as_pg="runuser -u ${BENCH_OS_USER:-postgres} --"
fi

dir=$(mktemp -d /tmp/netbuf-bench-c.XXXXXX)
[ -z "$as_pg" ] || chown "${BENCH_OS_USER:-postgres}" "$dir"
cleanup() {
	$as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

echo "sweep: starting a throwaway primary in $dir on port $port" >&2
$as_pg "$bindir/initdb" -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1 ||
	{ cat "$dir/initdb.log" >&2; exit 1; }
$as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
	-o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir" start >/dev/null ||
	{ cat "$dir/server.log" >&2; exit 1; }
"$bindir/psql" -X -q -v ON_ERROR_STOP=1 "host=$dir port=$port user=postgres dbname=postgres" \
	-c 'CREATE EXTENSION netbuf' >&2

# sslmode=disable: the throwaway server has no certificate; say so rather
# than let libpq ask for TLS first.
conninfo() {
	case $1 in
	unix) echo "host=$dir port=$port user=postgres dbname=postgres" ;;
	tcp) echo "host=127.0.0.1 port=$port user=postgres dbname=postgres sslmode=disable gssencmode=disable" ;;
	esac
}

run() {
	echo "sweep: $*" >&2
	"$@"
}

start=$(date +%s)
for t in unix tcp; do
	for p in $payloads; do
		# shellcheck disable=SC2086 # $iterations is an option and its value
		run "$here/raw_pingpong" --transport "$t" --payload "$p" $iterations
		for d in $depths; do
			run "$here/libpq_echo" --conninfo "$(conninfo "$t")" --payload "$p" --depth "$d" $iterations
			run "$here/libpq_select" --conninfo "$(conninfo "$t")" --payload "$p" --depth "$d" $iterations
		done
	done
	run "$here/libpq_echo" --conninfo "$(conninfo "$t")" --connect-only "$connects"
done
echo "sweep: done in $(($(date +%s) - start)) s" >&2
