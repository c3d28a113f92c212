#!/usr/bin/env bash
# Builds and runs the coverage-guided fuzz targets in fuzz/ (libFuzzer through the
# `libfuzzer-sys` crate, on stable Rust: the coverage instrumentation is asked of LLVM
# with -C flags, so neither nightly nor cargo-fuzz is needed).
#
#   scripts/fuzz.sh [TARGET...]               each target for 10 minutes (default mode)
#   scripts/fuzz.sh --time SECS [TARGET...]   each target for SECS seconds
#   scripts/fuzz.sh --smoke [TARGET...]       each target for 10 s from its seed corpus
#                                             (what CI runs; a crash fails it)
#   scripts/fuzz.sh --build [TARGET...]       build only
#   scripts/fuzz.sh --list                    the target names
#
# Seeds are read from fuzz/corpus/<target>/ (checked in, never written). New inputs found
# by a long run go to fuzz/work/<target>/ (kept between runs, not checked in); a smoke run
# uses a scratch directory. A crashing input is saved as fuzz/artifacts/<target>/crash-*
# (not checked in); reproduce it with the binary the script prints. Exit status: non-zero
# if a target did not build or found a crash. The build goes to
# ${CARGO_TARGET_DIR:-target}/fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

secs=600
smoke=false
build_only=false
targets=()
all_targets() { sed -n 's/^name = "\([a-z0-9_]*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^imagebus-fuzz$'; }
while [ "$#" -gt 0 ]; do
    case "$1" in
        --smoke) smoke=true; secs=10 ;;
        --time) secs="${2:?--time needs seconds}"; shift ;;
        --build) build_only=true ;;
        --list) all_targets; exit 0 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1") ;;
    esac
    shift
done
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(all_targets)
fi
for t in "${targets[@]}"; do
    if ! all_targets | grep -qx "$t"; then
        echo "fuzz.sh: no target $t (see --list)" >&2
        exit 2
    fi
done

host="$(rustc -vV | sed -n 's/^host: //p')"
target_dir="${CARGO_TARGET_DIR:-$root/target}/fuzz"
# The flags cargo-fuzz passes: inline 8-bit edge counters, the PC table and comparison
# tracing (what libFuzzer's coverage feedback reads), `cfg(fuzzing)`. Debug assertions and
# overflow checks come from fuzz/Cargo.toml's release profile. `--target` keeps these
# flags off build scripts and proc macros.
export RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
--cfg fuzzing"
export CARGO_INCREMENTAL=0
echo "fuzz.sh: building ${#targets[@]} target(s) into $target_dir"
bin_args=()
for t in "${targets[@]}"; do bin_args+=(--bin "$t"); done
cargo build --locked --release --quiet --manifest-path fuzz/Cargo.toml \
    --target "$host" --target-dir "$target_dir" "${bin_args[@]}"
bin_dir="$target_dir/$host/release"
if [ "$build_only" = true ]; then
    echo "fuzz.sh: built into $bin_dir"
    exit 0
fi

scratch=""
# Targets that write files (image_layer, image_layout) do so under TMPDIR, pointed at a
# directory of this run; image_layer also watches /tmp/ib-fuzz-escape. Both go at exit.
files="$(mktemp -d -t imagebus-fuzz-files.XXXXXX)"
cleanup() {
    if [ -n "$scratch" ]; then rm -rf "$scratch"; fi
    rm -rf "$files" /tmp/ib-fuzz-escape
}
trap cleanup EXIT
if [ "$smoke" = true ]; then
    scratch="$(mktemp -d -t imagebus-fuzz.XXXXXX)"
fi

failed=()
for t in "${targets[@]}"; do
    seeds="fuzz/corpus/$t"
    if [ ! -d "$seeds" ]; then
        echo "fuzz.sh: $t has no seed corpus $seeds" >&2
        failed+=("$t")
        continue
    fi
    if [ "$smoke" = true ]; then
        work="$scratch/$t"
    else
        work="fuzz/work/$t"
    fi
    mkdir -p "$work" "fuzz/artifacts/$t"
    log="fuzz/artifacts/$t/last-run.log"
    echo "==> fuzz $t: ${secs}s"
    set +e
    TMPDIR="$files" "$bin_dir/$t" "$work" "$seeds" \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 >"$log" 2>&1
    status=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
    if [ "$status" -ne 0 ]; then
        tail -n 60 "$log"
        echo "==> fuzz $t FAILED (exit $status; log $log; inputs under fuzz/artifacts/$t/;"
        echo "    reproduce: $bin_dir/$t fuzz/artifacts/$t/crash-...)"
        failed+=("$t")
    else
        echo "==> fuzz $t ok: ${execs:-?} executions, ${cov:-no coverage line}"
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz.sh: failed: ${failed[*]}"
    exit 1
fi
echo "fuzz.sh: ${#targets[@]} target(s) ran without a crash"
