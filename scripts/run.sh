#!/usr/bin/env bash
# Quick start, part one: install what is missing, build Gatehouse and open the desktop panel, which
# starts the server on the default models and keeps it running. Without a display (a server, an
# SSH session) it runs `gatehouse supervise` in the foreground instead. Arguments go to
# `gatehouse supervise` in that case (e.g. --port 9002).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
setup_all
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
    cargo build --release --locked -p gatehouse-server -p gatehouse-app
    echo "Gatehouse: opening the panel; the server runs on the models in $GATEHOUSE_DATA/models" >&2
    exec target/release/gatehouse-app
fi
cargo build --release --locked -p gatehouse-server
echo "Gatehouse: no display, so running the server under its supervisor in this terminal; stop with Ctrl-C" >&2
exec target/release/gatehouse supervise "$@"
