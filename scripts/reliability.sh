#!/usr/bin/env bash
# Gatehouse's reliability suite: installs what is missing, then throws at Gatehouse what an outside
# attacker or a bad day would, and reports what was tried and what broke.
#
#   ./scripts/reliability.sh           the full run; writes docs/RELIABILITY.md
#   ./scripts/reliability.sh --short   seconds per part; what ./scripts/test.sh runs, so CI keeps it green
#
# Parts so far: the fuzz targets in fuzz/ (libFuzzer, coverage-guided, built on stable Rust with the
# sanitizer-coverage passes cargo-fuzz uses; `cargo +nightly fuzz run TARGET` runs the same targets)
# and the regression inputs earlier runs found, replayed every time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mode=full
[ "${1:-}" = "--short" ] && mode=short
source scripts/setup.sh
# libFuzzer itself is C++, compiled by libfuzzer-sys.
setup_all g++
export GATEHOUSE_DATA

# The short run starts from a fixed seed, so CI tries the same inputs each time; the full run does not.
if [ "$mode" = short ]; then seconds=20 seed=(-seed=1); else seconds=600 seed=(); fi
targets=(tensor_request settings api_key workflow probe_response metrics_scrape)
target_dir="$PWD/target/fuzz"
triple="$(rustc -vV | sed -n 's/^host: //p')"
step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "fuzz targets: build (coverage instrumentation, target/fuzz)"
# --target keeps the instrumentation off build scripts and proc macros, as cargo-fuzz does.
(cd fuzz && RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing" \
    CARGO_TARGET_DIR="$target_dir" cargo build --locked --release --target "$triple" >&2)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rows=()
failed=0
libfuzzer_version="libFuzzer from libfuzzer-sys $(sed -n '/^name = "libfuzzer-sys"/{n;s/version = "\(.*\)"/\1/p}' fuzz/Cargo.lock)"
for target in "${targets[@]}"; do
    step "fuzz $target: ${seconds} s"
    binary="$target_dir/$triple/release/$target"
    mkdir -p "$work/$target/corpus" "$work/$target/artifacts"
    regressions=(fuzz/regressions/"$target"/*)
    if [ -e "${regressions[0]}" ]; then
        # Each input once: a crash fixed before must stay fixed.
        "$binary" "${regressions[@]}" >"$work/$target/replay.log" 2>&1 \
            || { echo "fuzz $target: a regression input fails again:" >&2; tail -30 "$work/$target/replay.log" >&2; failed=1; }
        replayed=${#regressions[@]}
    else
        replayed=0
    fi
    # New inputs go to the scratch corpus; the seeds in fuzz/corpus are read only.
    status=0
    "$binary" "$work/$target/corpus" "fuzz/corpus/$target" -max_total_time="$seconds" "${seed[@]}" -timeout=5 \
        -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$work/$target/artifacts/" >"$work/$target/run.log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$target/run.log")
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$work/$target/run.log")
    cov=$(grep -o 'cov: [0-9]*' "$work/$target/run.log" | tail -1 | cut -d' ' -f2)
    count() { find "$work/$target/artifacts" -name "$1-*" | wc -l; }
    crashes=$(count crash) timeouts=$(count timeout) ooms=$(count oom)
    if [ "$status" -ne 0 ] || [ "$((crashes + timeouts + ooms))" -ne 0 ]; then
        failed=1
        echo "fuzz $target found a problem; the input is kept in fuzz/findings/$target:" >&2
        mkdir -p "fuzz/findings/$target"
        cp "$work/$target/artifacts/"* "fuzz/findings/$target/" 2>/dev/null || true
        grep -E 'panicked|ERROR|SUMMARY' -A3 "$work/$target/run.log" | head -20 >&2
    fi
    printf 'fuzz %-15s %9s runs, coverage %5s, peak %4s MB; %s crashes, %s timeouts, %s out of memory; %s regression inputs replayed\n' \
        "$target" "${runs:-0}" "${cov:-0}" "${rss:-?}" "$crashes" "$timeouts" "$ooms" "$replayed" >&2
    rows+=("| \`$target\` | ${seconds} s | ${runs:-0} | ${cov:-0} | ${rss:-?} MB | $crashes | $timeouts | $ooms | $replayed |")
done

if [ "$mode" = full ]; then
    report=docs/RELIABILITY.md
    {
        echo "# Reliability"
        echo
        echo "What was thrown at Gatehouse, how much of it, and what broke. Written by \`./scripts/reliability.sh\`"
        echo "on $(date -u +%Y-%m-%d) at $(git rev-parse --short HEAD), $(nproc) cores; \`./scripts/test.sh\` runs the"
        echo "same parts for seconds each (\`--short\`)."
        echo
        echo "## Fuzzing"
        echo
        echo "Tool: $libfuzzer_version, coverage-guided (sanitizer coverage, 8-bit counters, compare tracing),"
        echo "built with $(rustc --version | cut -d' ' -f1-2); panics abort, overflow checks and debug assertions on."
        echo "Command: \`./scripts/reliability.sh\` (each target: \`-max_total_time=$seconds -timeout=5 -rss_limit_mb=2048\`),"
        echo "starting from the seeds in \`fuzz/corpus/\`; inputs that once failed are in \`fuzz/regressions/\` and replayed first."
        echo "Each target asserts a property besides not crashing (see \`fuzz/src/lib.rs\`)."
        echo
        echo "| target | budget | runs | coverage (edges) | peak memory | crashes | timeouts | out of memory | regressions replayed |"
        echo "|---|---|---|---|---|---|---|---|---|"
        printf '%s\n' "${rows[@]}"
        echo
        echo "Found and fixed:"
        echo
        echo "- \`api_key\`: a duration whose last character is not ASCII (a byte-order mark alone) made"
        echo "  \`keys create --expires\` and \`expose --for\` panic while splitting off the unit. Both now"
        echo "  read durations through \`core::duration\`, which refuses it with the usual message;"
        echo "  \`fuzz/regressions/api_key/byte-order-mark-as-duration\` and a unit test keep it fixed."
        echo "- \`api_key\`: a \`keys.toml\` whose hash held a non-ASCII character among its 64 bytes"
        echo "  panicked while reading the hex (a damaged file took the server down instead of being"
        echo "  reported with the key's id), and \`sha256:+f+f…\` was read as hex. Hex digits only now;"
        echo "  \`fuzz/regressions/api_key/non-ascii-in-key-hash\` and a unit test keep it fixed."
    } >"$report"
    echo "wrote $report" >&2
fi
[ "$failed" -eq 0 ] || { echo "reliability: failures above" >&2; exit 1; }
echo "reliability ($mode): every part passed" >&2
