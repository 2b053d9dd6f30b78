#!/usr/bin/env bash
# The PostgreSQL servers the test kit started that are still running: one
# line per postmaster whose data directory is a kit's scratch directory
# (tests/kit/src/server.rs: $NETBUF_TEST_TMPDIR or /tmp, netbuf-test-*).
# `make test` lists them before and after the tests and fails when the tests
# left one behind: a test must stop what it starts.
set -euo pipefail
base="${NETBUF_TEST_TMPDIR:-/tmp}"
for pidfile in "$base"/netbuf-test-*/*/postmaster.pid; do
	[ -e "$pidfile" ] || continue
	pid=$(head -n 1 "$pidfile")
	if kill -0 "$pid" 2>/dev/null; then
		echo "$pid $(dirname "$pidfile")"
	fi
done | sort
