#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this): setup (packages), rustfmt,
# clippy -D warnings, the binaries the CLI/daemon tests run, the docs, a short run of every
# fuzz target (scripts/fuzz.sh --smoke), `cargo test --workspace`
# (integration tests use a real redis-server, the kernel, runc and Ceph; run as root).
# Every stage runs even when an earlier one fails; the exit status is
# non-zero if any failed, and the last line sums up the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

scripts/setup.sh --packages-only

# CI builds once from a fresh clone: incremental caches would only cost disk (~8 GiB).
if [ -n "${CI:-}" ]; then
    export CARGO_INCREMENTAL=0
fi
echo "==> disk: $(df -h --output=avail "$(dirname "${CARGO_TARGET_DIR:-$PWD/target}")" | tail -1 | tr -d ' ') free where target/ is"

failed_stages=()
stage() {
    local name="$1"; shift
    echo "==> $name: $*"
    if ! "$@"; then
        echo "==> $name FAILED"
        failed_stages+=("$name")
    fi
}

stage fmt cargo fmt --all -- --check
stage fmt-fuzz cargo fmt --manifest-path fuzz/Cargo.toml -- --check
stage clippy cargo clippy --workspace --all-targets -- -D warnings
# No unwrap/expect in product code (libraries and binaries; test code and the test-support
# crate may use them): enforced here rather than kept by discipline.
stage no-unwrap cargo clippy --workspace --exclude imagebus-tests --lib --bins -- -D warnings -D clippy::unwrap_used -D clippy::expect_used
stage build cargo build --workspace --bins
stage doc env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
# Every fuzz target for 10 s from its checked-in seeds (fuzz/, its own workspace; a crash
# fails the stage; see docs/security.md#fuzzing).
stage fuzz scripts/fuzz.sh --smoke
if [ -n "${CI:-}" ]; then
    # The fuzz builds (their own target dir) are not needed by the tests.
    rm -rf "${CARGO_TARGET_DIR:-target}/fuzz"
fi

log="$(mktemp -t imagebus-test.XXXXXX)"
trap 'rm -f "$log"' EXIT
echo "==> test: cargo test --workspace"
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
test_status="${PIPESTATUS[0]}"
set -e
if [ "$test_status" -ne 0 ]; then
    failed_stages+=("test")
fi

passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
if [ "${#failed_stages[@]}" -gt 0 ]; then
    echo "failed stages: ${failed_stages[*]}"
fi
echo "$passed passed, $failed failed"
[ "${#failed_stages[@]}" -eq 0 ]
