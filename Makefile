# netbuf -- build, install, demo and test.
#
#   make            build libnetbuf.so (and the test module)
#   make install    install libnetbuf.so, the extension and netbuf.h (PGXS layout)
#   make demo       the seed's exchange between a throwaway primary and standby
#   make test       unit and end-to-end tests against real servers
#   make lint       rustfmt and clippy
#   make fuzz       cargo-fuzz targets of the protocol parsers (fuzz/)
#   make bench      netbuf against its baselines on throwaway servers (README: Benchmark)
#
# demo and test first install what a fresh Debian machine lacks (as root),
# then install netbuf into the PostgreSQL of $(PG_CONFIG).

PG_CONFIG ?= pg_config
CARGO ?= cargo
export PG_CONFIG

EXTENSION = netbuf
DATA = sql/netbuf--1.0.sql
PGFILEDESC = "netbuf - private channel between backends over libpq COPY BOTH"

# PGXS may not be there yet on a fresh machine: `make deps` installs it.
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(wildcard $(PGXS)),)
include $(PGXS)
endif

# pq-sys generates its libpq bindings from the headers of this installation.
export BINDGEN_EXTRA_CLANG_ARGS = -I$(shell $(PG_CONFIG) --includedir 2>/dev/null)

LIBNETBUF = target/release/libnetbuf.so
DEBIAN_PACKAGES = postgresql-15 postgresql-server-dev-15 libpq-dev libkrb5-dev \
	libclang-dev pkg-config make gcc openssl iproute2 valgrind

.PHONY: all deps lib install install-netbuf install-test-module demo test lint fuzz clean-netbuf

all: lib

lib:
	$(CARGO) build --release --features backend --lib

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

install: install-netbuf

install-netbuf: lib
	$(MKDIR_P) '$(DESTDIR)$(pkglibdir)' '$(DESTDIR)$(includedir_server)/extension/netbuf'
	$(INSTALL_SHLIB) $(LIBNETBUF) '$(DESTDIR)$(pkglibdir)/libnetbuf$(DLSUFFIX)'
	$(INSTALL_DATA) include/netbuf.h '$(DESTDIR)$(includedir_server)/extension/netbuf/'

# The test/demo module: backend C code that uses netbuf.h as the seed does.
install-test-module:
	$(MAKE) -C tests/pg_module install

# demo and test re-run make after deps, so that PGXS is included.
demo: deps
	$(MAKE) --no-print-directory install install-test-module
	$(CARGO) run --release --example demo

test: deps
	$(MAKE) --no-print-directory install install-test-module
	$(CARGO) test --release --no-fail-fast -- --test-threads=2

# Fuzz the parsers of network bytes (src/protocol.rs) for a fixed number of
# runs each (FUZZ_RUNS, default 200000), on the corpus kept in fuzz/corpus.
fuzz:
	bash fuzz/run.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --all-targets -- -D warnings
	$(CARGO) clippy --release --features backend --lib -- -D warnings

clean-netbuf:
	$(CARGO) clean
	$(MAKE) -C tests/pg_module clean

clean: clean-netbuf

# make bench: netbuf against its baselines on throwaway servers (bench/,
# examples/bench.rs); not part of make test.  BENCH_QUICK=1 for a short run.
.PHONY: bench install-bench-module

install-bench-module:
	$(MAKE) -C bench/pg_module install

bench: deps
	$(MAKE) --no-print-directory install install-bench-module
	$(MAKE) -C bench/c
	$(CARGO) run --release --example bench
