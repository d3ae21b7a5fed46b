#!/usr/bin/env bash
# Quick start, part two: install what is missing and run every check and test Gatehouse has:
# formatting, clippy, unit tests and the end-to-end tests against the real binary, real ONNX
# Runtime (whose reference results come from the onnxruntime Python package) and a real Secret
# Service (gnome-keyring, unlocked, in a private D-Bus session that ends with the tests).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
# The keychain tests need a Secret Service, a private session bus and libsecret's secret-tool;
# the TLS tests use openssl s_client and curl as independent clients.
# The panel's tests drive the real app in WebKit under a virtual display, through tauri-driver,
# read what its copy buttons put on the clipboard with xclip and capture the screen with imagemagick.
# iproute2's `ip` lists this computer's addresses and builds the network namespace a test uses as
# another computer on the network.
# rpm reads the .rpm the package check builds; lintian, Debian's checker, judges the .deb.
setup_all dbus gnome-keyring libsecret-tools openssl xvfb webkit2gtk-driver xclip imagemagick iproute2 rpm lintian
install_upstreams
TAURI_DRIVER="${CARGO_HOME:-$HOME/.cargo}/bin/tauri-driver"
if ! [ -x "$TAURI_DRIVER" ]; then
    say "installing tauri-driver (the WebDriver bridge for the panel's tests)"
    cargo install tauri-driver --locked --version 2.0.5 >&2
fi
export TAURI_DRIVER
# Tests run side by side: every server they start takes a free gRPC port, not 9002.
export GATEHOUSE_GRPC_PORT=0
export GATEHOUSE_DATA GATEHOUSE_VENV GATEHOUSE_UPSTREAMS_VENV GATEHOUSE_KSERVE_VENV GATEHOUSE_KUBERNETES_VENV GATEHOUSE_RELIABILITY_VENV GATEHOUSE_PERF_ANALYZER GATEHOUSE_ROBOFLOW_VENV GATEHOUSE_PREFECT_VENV
step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
step "format"
cargo fmt --all --check
step "panel unit tests (vitest)"
(cd ui && npx vitest run)
step "clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings
step "build"
cargo build --locked --workspace --bins
step "tests"
log="$(mktemp)"
status=0
keyring_home="$(mktemp -d)"
trap 'rm -f "$log"; rm -rf "$keyring_home"' EXIT
# gnome-keyring keeps its keyrings under XDG_DATA_HOME: a fresh one per run, unlocked with a
# throwaway password, so the tests never touch the developer's own keychain.
XDG_DATA_HOME="$keyring_home" dbus-run-session -- bash -c '
    printf "gatehouse-tests" | gnome-keyring-daemon --unlock --components=secrets >/dev/null
    exec cargo test --locked --workspace --no-fail-fast
' 2>&1 | tee "$log" || status=$?
step "reliability suite, short run (fuzz targets, regression inputs)"
./scripts/reliability.sh --short || status=1
step "packages: build the .deb and .rpm, install, upgrade and remove the .deb"
if [ "$(id -u)" -eq 0 ]; then
    { ./scripts/package.sh >/dev/null && ./scripts/check-package.sh; } || status=1
else
    # Installing a package needs root; CI runs as root, so the check never goes unrun there.
    echo "packages: skipped, installing one needs root (run ./scripts/check-package.sh as root)" >&2
fi
# One closing line for the whole suite, summed over every test binary cargo ran.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "\ntests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
[ -d test-artifacts ] && echo "screenshots of the panel: $(pwd)/test-artifacts" >&2
exit "$status"
