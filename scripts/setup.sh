#!/usr/bin/env bash
# Installs whatever Gatehouse needs and is missing, and does nothing when nothing is: Debian
# packages, a private Python environment with pinned packages, libonnxruntime.so from the
# onnxruntime wheel, and the default models. Sourced by run.sh and test.sh; safe to run alone.
#
#   GATEHOUSE_DATA   where the runtime, models and Python environment go (default ~/.local/share/gatehouse)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GATEHOUSE_DATA="${GATEHOUSE_DATA:-${XDG_DATA_HOME:-$HOME/.local/share}/gatehouse}"
export GATEHOUSE_DATA
GATEHOUSE_VENV="$GATEHOUSE_DATA/venv"
export GATEHOUSE_VENV

say() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }
fail() { printf 'setup: %s\n' "$*" >&2; exit 1; }

# Debian packages: the C toolchain and pkg-config for Rust crates, Python's venv module, curl for
# the quick start's examples. Extra names can be passed (the benchmark adds wrk).
apt_packages=(build-essential pkg-config ca-certificates curl python3 python3-venv)

install_debian_packages() {
    local missing=()
    for package in "${apt_packages[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || fail "missing packages ${missing[*]} and no apt-get to install them; install them by hand"
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    say "installing Debian packages: ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

check_rust() {
    command -v cargo >/dev/null || fail "cargo is not installed; install Rust (rustup) first, then run this again"
}

# The stamp records what was installed; a change to the pinned versions or to the installer
# itself triggers a reinstall, anything else is a no-op.
install_python_and_models() {
    local stamp="$GATEHOUSE_DATA/.setup-stamp"
    local want
    want="$(cat "$here/requirements.txt" "$here/install_models.py" | sha256sum | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
        && [ -e "$GATEHOUSE_DATA/runtime/libonnxruntime.so" ] && [ -f "$GATEHOUSE_DATA/models/magika/1/model.onnx" ] \
        && [ -x "$GATEHOUSE_VENV/bin/python" ]; then
        return 0
    fi
    mkdir -p "$GATEHOUSE_DATA"
    if [ ! -x "$GATEHOUSE_VENV/bin/python" ]; then
        say "creating the Python environment in $GATEHOUSE_VENV"
        python3 -m venv "$GATEHOUSE_VENV" || fail "python3 -m venv failed; on Debian/Ubuntu install python3-venv"
    fi
    say "installing pinned Python packages (onnxruntime, magika, onnx, fastapi, uvicorn)"
    "$GATEHOUSE_VENV/bin/pip" install --disable-pip-version-check -q -r "$here/requirements.txt"
    "$GATEHOUSE_VENV/bin/python" "$here/install_models.py" "$GATEHOUSE_DATA" >&2
    printf '%s' "$want" > "$stamp"
}

# The servers guard mode is tested in front of, each set in an environment of its own (their pins
# differ): MLServer and uvicorn with WebSockets (scripts/upstreams.txt), KServe with Triton's HTTP
# client (scripts/upstreams-kserve.txt), Roboflow Inference and Prefect (the seeds' servers).
# Only the test command and the benchmark install them.
GATEHOUSE_UPSTREAMS_VENV="$GATEHOUSE_DATA/upstreams-venv"
GATEHOUSE_KSERVE_VENV="$GATEHOUSE_DATA/kserve-venv"
GATEHOUSE_ROBOFLOW_VENV="$GATEHOUSE_DATA/roboflow-venv"
GATEHOUSE_PREFECT_VENV="$GATEHOUSE_DATA/prefect-venv"
GATEHOUSE_KUBERNETES_VENV="$GATEHOUSE_DATA/kubernetes-venv"
GATEHOUSE_RELIABILITY_VENV="$GATEHOUSE_DATA/reliability-venv"
# Triton's load tool, perf_analyzer, unpacked from the registries' wheels (see install_perf_analyzer).
GATEHOUSE_PERF_ANALYZER="$GATEHOUSE_DATA/perf-analyzer"
export GATEHOUSE_UPSTREAMS_VENV GATEHOUSE_KSERVE_VENV GATEHOUSE_KUBERNETES_VENV GATEHOUSE_RELIABILITY_VENV
export GATEHOUSE_ROBOFLOW_VENV GATEHOUSE_PREFECT_VENV
install_venv() {
    local venv="$1" requirements="$2" what="$3"
    local stamp="$venv/.setup-stamp"
    local want
    want="$(sha256sum "$requirements" | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
        return 0
    fi
    say "installing $what"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install --disable-pip-version-check -q -r "$requirements"
    printf '%s' "$want" > "$stamp"
}
install_upstreams() {
    install_venv "$GATEHOUSE_UPSTREAMS_VENV" "$here/upstreams.txt" "the servers guard mode is tested with (MLServer, uvicorn with WebSockets)"
    install_venv "$GATEHOUSE_KSERVE_VENV" "$here/upstreams-kserve.txt" "KServe and Triton's HTTP client for guard mode's tests"
    install_venv "$GATEHOUSE_KUBERNETES_VENV" "$here/kubernetes.txt" "kubernetes-validate for the Kubernetes export's tests"
    install_roboflow
    install_venv "$GATEHOUSE_PREFECT_VENV" "$here/upstreams-prefect.txt" "a Prefect server for guard mode's tests"
    install_reliability_tools
    install_perf_analyzer
}
# Roboflow Inference brings torch with its CUDA libraries (PyPI has no CPU-only build): ~7 GB
# installed, so it is installed without pip's cache and only where the disk has room for it.
install_roboflow() {
    local stamp="$GATEHOUSE_ROBOFLOW_VENV/.setup-stamp" want
    want="$(sha256sum "$here/upstreams-roboflow.txt" | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    local free_kib
    free_kib="$(df -Pk "$GATEHOUSE_DATA" | awk 'NR == 2 { print $4 }')"
    if [ "$free_kib" -lt $((10 * 1024 * 1024)) ]; then
        fail "Roboflow Inference needs about 10 GB free to install for guard mode's tests, and $GATEHOUSE_DATA has $((free_kib / 1024)) MB; free some space and run this again"
    fi
    PIP_NO_CACHE_DIR=1 install_venv "$GATEHOUSE_ROBOFLOW_VENV" "$here/upstreams-roboflow.txt" "Roboflow Inference for guard mode's tests (about 7 GB, a few minutes)"
}
# perf_analyzer, the load tool Triton's users run: its last PyPI build is in the tritonclient
# 2.41.1 wheel; it links against the CUDA runtime library (never used: no GPU is asked for), which
# the nvidia-cuda-runtime-cu12 wheel carries, and libb64 from Debian. Only those files are unpacked.
install_perf_analyzer() {
    local stamp="$GATEHOUSE_PERF_ANALYZER/.setup-stamp" want="tritonclient==2.41.1 nvidia-cuda-runtime-cu12==12.4.127"
    install_debian_packages libb64-0d
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$GATEHOUSE_PERF_ANALYZER/perf_analyzer" ]; then
        return 0
    fi
    say "installing Triton's perf_analyzer (from the tritonclient 2.41.1 wheel)"
    local download
    download="$(mktemp -d)"
    # shellcheck disable=SC2086
    "$GATEHOUSE_KSERVE_VENV/bin/pip" download --disable-pip-version-check -q --no-deps --only-binary=:all: \
        --platform manylinux2014_x86_64 --dest "$download" $want
    mkdir -p "$GATEHOUSE_PERF_ANALYZER"
    "$GATEHOUSE_KSERVE_VENV/bin/python" - "$download" "$GATEHOUSE_PERF_ANALYZER" <<'PY'
import pathlib, shutil, sys, zipfile
download, target = map(pathlib.Path, sys.argv[1:])
for wheel in download.glob("*.whl"):
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            name = member.rsplit("/", 1)[-1]
            if member.endswith("bin/perf_analyzer") or name == "libcudart.so.12":
                with archive.open(member) as source, open(target / name, "wb") as out:
                    shutil.copyfileobj(source, out)
(target / "perf_analyzer").chmod(0o755)
PY
    rm -rf "$download"
    printf '%s' "$want" > "$stamp"
}
install_reliability_tools() {
    install_venv "$GATEHOUSE_RELIABILITY_VENV" "$here/reliability.txt" "schemathesis and sslyze for the reliability suite"
}

# The desktop panel: WebKitGTK and GTK for Tauri, the tray's indicator library, SVG icons.
app_packages=(libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev)

# The panel's web page: pinned npm packages (package-lock.json), built into ui/dist, which the
# app embeds at compile time. `npm ci` runs only when the lock file changed.
build_ui() {
    command -v npm >/dev/null || fail "npm is not installed; install Node.js 20 or newer, then run this again"
    local ui="$here/../ui"
    local stamp="$ui/node_modules/.lock-stamp"
    local want
    want="$(sha256sum "$ui/package-lock.json" | cut -d' ' -f1)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        say "installing the panel's pinned npm packages"
        (cd "$ui" && npm ci --no-audit --no-fund --loglevel=error >&2)
        printf '%s' "$want" > "$stamp"
    fi
    (cd "$ui" && npx vite build --logLevel error >&2)
}

setup_all() {
    install_debian_packages "${app_packages[@]}" "$@"
    check_rust
    install_python_and_models
    build_ui
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    setup_all "$@"
fi
