#!/usr/bin/env bash
# Builds Gatehouse's installable packages with Tauri's own bundler: a .deb and an .rpm carrying the
# panel, the `gatehouse` command (installed on the PATH), ONNX Runtime and the two default models,
# the icons, a desktop entry, and the licences of what is bundled. AppImage is not built: its
# tools (linuxdeploy, appimagetool) are downloaded at build time, which this project never does.
#
#   ./scripts/package.sh            → target/release/bundle/{deb,rpm}/
#
# The release build is shared with ./scripts/run.sh; the bundler is tauri-cli, installed once.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
setup_all
TAURI_CLI_VERSION=2.12.4
if ! cargo tauri --version 2>/dev/null | grep -q "tauri-cli $TAURI_CLI_VERSION"; then
    say "installing tauri-cli $TAURI_CLI_VERSION (Tauri's bundler)"
    cargo install tauri-cli --locked --version "$TAURI_CLI_VERSION" >&2
fi
cargo build --release --locked -p gatehouse-server >&2

# What goes inside, staged where packaging/tauri.package.json takes it from.
stage=target/package
rm -rf "$stage"
mkdir -p "$stage/bin" "$stage/runtime" "$stage/models" "$stage/licenses"
triple="$(rustc -vV | sed -n 's/^host: //p')"
# Tauri installs an external binary named <name>-<target triple> as /usr/bin/<name>.
# The release profile keeps line tables for the benchmarks' profiles; the packaged command does
# without them (80 MB → a fifth of that).
cp target/release/gatehouse "$stage/bin/gatehouse-$triple"
strip --strip-unneeded "$stage/bin/gatehouse-$triple"
runtime="$(readlink -f "$GATEHOUSE_DATA/runtime/libonnxruntime.so")"
cp "$runtime" "$stage/runtime/libonnxruntime.so"
for model in magika sigmoid; do
    cp -r "$GATEHOUSE_DATA/models/$model" "$stage/models/"
done
cp LICENSE "$stage/licenses/Gatehouse-LICENSE"
# Debian's changelog, compressed the way policy asks (and reproducibly: no name, no time).
gzip -9n < packaging/changelog > "$stage/changelog.gz"
# ONNX Runtime (MIT, with its third-party notices) ships its licence in its wheel, as does the
# sigmoid model that comes from it; magika's wheel declares Apache-2.0 in its metadata without a
# licence file, and Apache-2.0's text is Gatehouse's own LICENSE.
site="$("$GATEHOUSE_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
[ -f "$site/onnxruntime/LICENSE" ] || fail "no licence file in the onnxruntime wheel at $site/onnxruntime; the package must carry it"
cp "$site/onnxruntime/LICENSE" "$stage/licenses/onnxruntime-LICENSE"
[ -f "$site/onnxruntime/ThirdPartyNotices.txt" ] && cp "$site/onnxruntime/ThirdPartyNotices.txt" "$stage/licenses/onnxruntime-ThirdPartyNotices.txt"
grep -q '^License: Apache-2.0' "$site"/magika-*.dist-info/METADATA || fail "magika's licence is no longer Apache-2.0; check it before packaging its model"
{ echo "The magika model (from the magika package, $(sed -n 's/^Version: //p' "$site"/magika-*.dist-info/METADATA)) is licensed under the Apache License 2.0:"; echo; cat LICENSE; } > "$stage/licenses/magika-LICENSE"
# The package's version is the workspace's, which `gatehouse --version` and /info report too.
# Built first, then stripped (the packaged panel needs no line tables either), then bundled.
config=../packaging/tauri.package.json
(cd src-tauri && cargo tauri build --ci --no-bundle --config "$config" >&2)
strip --strip-unneeded target/release/gatehouse-app
(cd src-tauri && cargo tauri bundle --ci --bundles deb,rpm --config "$config" >&2)
if command -v lintian >/dev/null; then
    # Debian's own checker: errors fail the build, warnings are shown (the test command installs it).
    lintian --fail-on error target/release/bundle/deb/*.deb >&2
else
    say "lintian is not installed, so the .deb was not checked by it (apt install lintian)"
fi
ls target/release/bundle/deb/*.deb target/release/bundle/rpm/*.rpm
