#!/usr/bin/env bash
# Quick start, part one: install what is missing, build Gatehouse and run it on the default models.
# Arguments go to `gatehouse serve` (e.g. --port 9002).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
setup_all
cargo build --release --locked -p gatehouse-server
echo "Gatehouse: serving the models in $GATEHOUSE_DATA/models; stop with Ctrl-C" >&2
exec target/release/gatehouse serve "$@"
