#!/usr/bin/env bash
# make fuzz: run every cargo-fuzz target for a fixed number of runs.
#
#   FUZZ_RUNS=N    runs per target (default 200000)
#   FUZZ_SEED=S    libFuzzer seed (default: random; each summary line prints it)
#
# Stable Rust only: `--sanitizer none`.  cargo-fuzz then passes only stable
# -C flags (sancov coverage, -Cdebug-assertions), so no nightly and no
# RUSTC_BOOTSTRAP.  ASan would need -Zsanitizer (nightly) and finds nothing
# here: the parsers are safe Rust, so their bugs are panics, which libFuzzer
# catches as crashes without a sanitizer.  --debug-assertions turns on
# overflow checks, so an arithmetic overflow is a crash too.
#
# Runs never write into the committed corpus/: new inputs go to a temp dir
# given first, corpus/<target> is read as a second, read-only dir.  Crashing
# inputs go to artifacts/<target>/ (ignored by git).
set -euo pipefail
cd "$(dirname "$0")"

runs=${FUZZ_RUNS:-200000}
seed=${FUZZ_SEED:-0}
cargo_fuzz_version=0.13.2
flags=(--sanitizer none --debug-assertions)

# Build needs: libpq and libclang for pq-sys's bindings, a C++ compiler for
# libFuzzer itself.
missing=$(for p in libpq-dev libclang-dev pkg-config g++; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || echo "$p"
done)
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "fuzz: needs these Debian packages: $missing (run as root, or install them)" >&2
        exit 1
    fi
    echo "== installing Debian packages:" $missing
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

# As the Makefile does, but only now that pg_config surely exists (make may
# have exported a bare -I before libpq-dev was installed).
BINDGEN_EXTRA_CLANG_ARGS="-I$("${PG_CONFIG:-pg_config}" --includedir)"
export BINDGEN_EXTRA_CLANG_ARGS

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz $cargo_fuzz_version"
    # Pinned: a later cargo-fuzz may pass other flags to rustc.
    cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
fi

cargo fuzz build "${flags[@]}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

failed=0
summary=()
for target in $(cargo fuzz list); do
    mkdir -p "$work/$target"
    log=$work/$target.log
    start=$EPOCHREALTIME
    if cargo fuzz run "${flags[@]}" "$target" "$work/$target" "corpus/$target" -- \
        -runs="$runs" -seed="$seed" -print_final_stats=1 >"$log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed=1
        # The panic and the failing input without the backtrace frames, or
        # the log's end when it failed otherwise (build, timeout, OOM).
        if grep -q 'panicked at' "$log"; then
            sed -n '/panicked at/,$p' "$log" | grep -v -E '^ +([0-9]+:|at) ' >&2 || true
        else
            tail -n 30 "$log" >&2
        fi
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    secs=$(awk "BEGIN { printf \"%.1f\", $EPOCHREALTIME - $start }")
    used_seed=$(sed -n 's/^INFO: Seed: //p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)
    summary+=("fuzz $target: $status, ${execs:-?} execs in ${secs:-?} s, ${cov:-cov: ?}, seed ${used_seed:-?}")
done

printf '%s\n' "${summary[@]}"
if [ "$failed" != 0 ]; then
    echo "fuzz: a target failed; its crashing input is in fuzz/artifacts/" >&2
fi
exit "$failed"
