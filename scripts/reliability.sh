#!/usr/bin/env bash
# Gatehouse's reliability suite: installs what is missing, then throws at Gatehouse what an outside
# attacker or a bad day would, and reports what was tried and what broke.
#
#   ./scripts/reliability.sh            every part at its full budget; writes docs/RELIABILITY.md
#   ./scripts/reliability.sh PART...    only these parts (full budget); the report is written again
#                                       from the latest run of every part, each with its own commit
#   ./scripts/reliability.sh --short    the fuzz part for seconds a target, what ./scripts/test.sh runs
#
# Parts: fuzz (libFuzzer targets in fuzz/), api (schemathesis), tls (sslyze), faults (kill -9,
# full/read-only disks, no keychain, damaged files), load (slowloris, idle keep-alive connections),
# lan (another device in network namespaces), secrets (no secret where it must not be). All but
# fuzz are e2e tests in tests/e2e/reliability/ run against the release binary; their short
# versions run in ./scripts/test.sh with the rest of the e2e tests, so CI keeps them green.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
all_parts=(fuzz api tls faults load lan secrets)
mode=full parts=()
for arg in "$@"; do
    case "$arg" in
        --short) mode=short ;;
        fuzz | api | tls | faults | load | lan | secrets) parts+=("$arg") ;;
        *) echo "reliability: unknown part '$arg'; the parts are: ${all_parts[*]} (or --short)" >&2; exit 2 ;;
    esac
done
if [ "$mode" = short ]; then parts=(fuzz); elif [ ${#parts[@]} -eq 0 ]; then parts=("${all_parts[@]}"); fi
source scripts/setup.sh
# libFuzzer itself is C++, compiled by libfuzzer-sys; the other parts use the test command's tools.
setup_all g++ dbus gnome-keyring openssl curl iproute2
install_reliability_tools
export GATEHOUSE_DATA GATEHOUSE_RELIABILITY_VENV
sections="$PWD/target/reliability"
mkdir -p "$sections"
step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
failed=0
stamp() { echo "Run on $(date -u +%Y-%m-%d) at \`$(git rev-parse --short HEAD)\`$(git diff --quiet HEAD -- crates tests fuzz || echo ' (with uncommitted changes)'), $(nproc) cores."; }

fuzz_part() {
    # The short run starts from a fixed seed, so CI tries the same inputs each time; the full run does not.
    local seconds seed started
    started="$(stamp)"
    if [ "$mode" = short ]; then seconds=20 seed=(-seed=1); else seconds=600 seed=(); fi
    local targets=(tensor_request settings api_key workflow probe_response metrics_scrape)
    local target_dir="$PWD/target/fuzz"
    local triple
    triple="$(rustc -vV | sed -n 's/^host: //p')"
    step "fuzz targets: build (coverage instrumentation, target/fuzz)"
    # --target keeps the instrumentation off build scripts and proc macros, as cargo-fuzz does.
    (cd fuzz && RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
        -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
        -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing" \
        CARGO_TARGET_DIR="$target_dir" cargo build --locked --release --target "$triple" >&2)
    local work
    work="$(mktemp -d)"
    local rows=()
    local libfuzzer_version
    libfuzzer_version="libFuzzer from libfuzzer-sys $(sed -n '/^name = "libfuzzer-sys"/{n;s/version = "\(.*\)"/\1/p}' fuzz/Cargo.lock)"
    for target in "${targets[@]}"; do
        step "fuzz $target: ${seconds} s"
        local binary="$target_dir/$triple/release/$target"
        mkdir -p "$work/$target/corpus" "$work/$target/artifacts"
        local regressions=(fuzz/regressions/"$target"/*) replayed=0
        if [ -e "${regressions[0]}" ]; then
            # Each input once: a crash fixed before must stay fixed.
            "$binary" "${regressions[@]}" >"$work/$target/replay.log" 2>&1 \
                || { echo "fuzz $target: a regression input fails again:" >&2; tail -30 "$work/$target/replay.log" >&2; failed=1; }
            replayed=${#regressions[@]}
        fi
        # New inputs go to the scratch corpus; the seeds in fuzz/corpus are read only.
        local status=0
        "$binary" "$work/$target/corpus" "fuzz/corpus/$target" -max_total_time="$seconds" "${seed[@]}" -timeout=5 \
            -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
            -artifact_prefix="$work/$target/artifacts/" >"$work/$target/run.log" 2>&1 || status=$?
        local runs rss cov crashes timeouts ooms
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
    rm -rf "$work"
    [ "$mode" = full ] || return 0
    {
        echo "## Fuzzing"
        echo
        echo "$started"
        echo "Tool: $libfuzzer_version, coverage-guided (sanitizer coverage, 8-bit counters, compare tracing),"
        echo "built with $(rustc --version | cut -d' ' -f1-2); panics abort, overflow checks and debug assertions on."
        echo "Command: \`./scripts/reliability.sh fuzz\` (each target: \`-max_total_time=$seconds -timeout=5 -rss_limit_mb=2048\`),"
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
    } >"$sections/fuzz.md"
}

# The other parts are e2e tests; GATEHOUSE_RELIABILITY=full gives them their full budgets and
# GATEHOUSE_RELIABILITY_REPORT is where each writes its section.
e2e_parts=()
for part in "${parts[@]}"; do [ "$part" = fuzz ] || e2e_parts+=("$part"); done
for part in "${parts[@]}"; do [ "$part" = fuzz ] && fuzz_part; done
if [ ${#e2e_parts[@]} -gt 0 ]; then
    step "build: the release binary the parts run against, and the e2e tests"
    cargo build --locked --release -p gatehouse-server --bin gatehouse >&2
    cargo build --locked --bin gatehouse >&2
    cargo test --locked -p gatehouse-tests --test e2e --no-run >&2
    keyring_home="$(mktemp -d)"
    trap 'rm -rf "$keyring_home"' EXIT
    for part in "${e2e_parts[@]}"; do
        step "$part"
        rm -f "$sections/$part.md"
        # A private, unlocked keychain for the run, as in the test command.
        XDG_DATA_HOME="$keyring_home" GATEHOUSE_RELIABILITY=full GATEHOUSE_RELIABILITY_REPORT="$sections" \
            GATEHOUSE_RELIABILITY_STAMP="$(stamp)" GATEHOUSE_BIN="$PWD/target/release/gatehouse" \
            dbus-run-session -- bash -c '
                printf "gatehouse-tests" | gnome-keyring-daemon --unlock --components=secrets >/dev/null
                exec cargo test --locked -p gatehouse-tests --test e2e "reliability::$0::" -- --test-threads=1 --nocapture
            ' "$part" >&2 || { echo "reliability: part $part failed (above)" >&2; failed=1; }
    done
fi

if [ "$mode" = full ]; then
    report=docs/RELIABILITY.md
    {
        echo "# Reliability"
        echo
        echo "What was thrown at Gatehouse, how much of it, and what broke. Written by \`./scripts/reliability.sh\`;"
        echo "each part says the commit it ran at. \`./scripts/test.sh\` runs every part for seconds (the fuzz"
        echo "targets through \`./scripts/reliability.sh --short\`, the rest as e2e tests in \`tests/e2e/reliability/\`)."
        for part in "${all_parts[@]}"; do
            echo
            if [ -f "$sections/$part.md" ]; then
                cat "$sections/$part.md"
            else
                echo "## $part"
                echo
                echo "Not run for this report: \`./scripts/reliability.sh $part\`."
            fi
        done
    } >"$report"
    echo "wrote $report" >&2
fi
[ "$failed" -eq 0 ] || { echo "reliability: failures above" >&2; exit 1; }
echo "reliability ($mode): every part passed: ${parts[*]}" >&2
