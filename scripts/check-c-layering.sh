#!/usr/bin/env bash
# Usage: scripts/check-c-layering.sh        (PG_CONFIG as for make)
#
# Checks the dependency rule of c_shim/ (c_shim/internal.h states it) on
# what the C files really do, not on what their comments say:
#
# - calls and variables: each .c file is compiled alone and nm lists what
#   it defines and what it uses; a use of a symbol another file defines is
#   an edge between the two files.  common/* other than module.c depend on
#   no file of standby/ or primary/; standby/ and primary/ do not depend on
#   each other; nothing depends on common/module.c; no cycle (tsort).
# - includes: the #include "..." lines that name a file of c_shim/ or
#   include/ form no cycle.
#
# Prints each file's dependencies, then OK or what breaks the rule.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_config=${PG_CONFIG:-pg_config}
server_include=$("$pg_config" --includedir-server)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

: >"$work/symbols"
for file in $(cd c_shim && find . -name '*.c' | sed 's|^\./||' | sort); do
	object=$work/$(echo "$file" | tr / _).o
	cc -c -fvisibility=hidden -I"$server_include" -Iinclude -Ic_shim \
		-DNETBUF_VERSION='"layering-check"' "c_shim/$file" -o "$object"
	nm "$object" | awk -v file="$file" '
		$1 == "U" { print "use", file, $2 }
		NF == 3 && $2 ~ /^[TDBRCG]$/ { print "def", file, $3 }' >>"$work/symbols"
done

# "from to symbol" for every symbol one file uses and another defines.
awk '$1 == "def" { owner[$3] = $2; next }
	$1 == "use" { uses[++n] = $2 " " $3 }
	END {
		for (i = 1; i <= n; i++) {
			split(uses[i], u, " ")
			if ((u[2] in owner) && owner[u[2]] != u[1])
				print u[1], owner[u[2]], u[2]
		}
	}' "$work/symbols" | sort -u >"$work/calls"

# "from to" for every #include "..." of a file of c_shim/ or include/.
: >"$work/includes"
for file in $(cd c_shim && find . -name '*.[ch]' | sed 's|^\./||' | sort); do
	dir=$(dirname "$file")
	sed -n 's/^#include "\(.*\)"/\1/p' "c_shim/$file" | while read -r name; do
		for candidate in "c_shim/$dir/$name" "c_shim/$name" "include/$name"; do
			if [ -f "$candidate" ]; then
				echo "$file ${candidate#c_shim/}" | sed 's|c_shim/\./||; s| \./| |' >>"$work/includes"
				break
			fi
		done
	done
done

echo "== calls and variables (file: the files it uses)"
awk '{ deps[$1] = deps[$1] " " $2 } END { for (f in deps) print f ":" deps[f] }' "$work/calls" |
	awk '{ out = $1; delete seen; for (i = 2; i <= NF; i++) if (!seen[$i]++) out = out " " $i; print out }' | sort
echo "== includes (file: the files it includes)"
awk '{ deps[$1] = deps[$1] " " $2 } END { for (f in deps) print f ":" deps[f] }' "$work/includes" | sort

status=0
violations=$(awk '
	$2 == "common/module.c" { print; next }
	$1 ~ /^common\// && $1 != "common/module.c" && $2 ~ /^(standby|primary)\// { print; next }
	$1 ~ /^standby\// && $2 ~ /^primary\// { print; next }
	$1 ~ /^primary\// && $2 ~ /^standby\// { print; next }' "$work/calls")
if [ -n "$violations" ]; then
	echo "FAILED: dependencies against the rule (from to symbol):" >&2
	echo "$violations" >&2
	status=1
fi
for graph in calls includes; do
	if ! awk '{ print $1, $2 }' "$work/$graph" | tsort >/dev/null 2>"$work/tsort"; then
		echo "FAILED: a cycle in the $graph:" >&2
		cat "$work/tsort" >&2
		status=1
	fi
done
[ "$status" = 0 ] && echo "OK: no cycle, common/ depends on neither side, the sides not on each other"
exit "$status"
