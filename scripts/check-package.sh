#!/usr/bin/env bash
# Checks the .deb and .rpm that scripts/package.sh built, the way a person would meet them: what
# they declare and carry, then the .deb installed with apt on this machine — `gatehouse` on the
# PATH, the installed server answering inference on the packaged runtime and models with no
# environment variables set, an upgrade to a newer package keeping the person's keys, settings,
# certificates and audit log, and removal leaving them (and saying where). Needs root (it
# installs and removes the package) and leaves the machine without it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
say() { printf '\033[1mpackage:\033[0m %s\n' "$*" >&2; }
fail() { printf 'package check failed: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "run as root: the check installs and removes the package"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
deb="$(ls target/release/bundle/deb/*_"$version"_*.deb)"
rpm="$(ls target/release/bundle/rpm/*-"$version"-*.rpm)"
work="$(mktemp -d)"
trap 'rm -rf "$work"; pkill -f "$work/serve-marker" 2>/dev/null || true' EXIT

say "what $deb declares and carries"
info="$(dpkg-deb --info "$deb")"
package="$(dpkg-deb --field "$deb" Package)"
for field in "Version: $version" "Depends: .*libwebkit2gtk-4.1-0" "Depends: .*libayatana-appindicator3-1" "Recommends: .*gnome-keyring"; do
    grep -Eq "$field" <<<"$info" || fail "$deb: no \`$field\` in its control file"
done
# Tauri's bundler declares the WebKitGTK, GTK and tray libraries itself; the keychain is a recommendation.
contents="$(dpkg-deb --contents "$deb" | awk '{print $6}' | sed 's|^\./||; s|^|./|')"
for path in ./usr/bin/gatehouse ./usr/bin/gatehouse-app ./usr/lib/Gatehouse/runtime/libonnxruntime.so \
    ./usr/lib/Gatehouse/models/magika/1/model.onnx ./usr/lib/Gatehouse/models/sigmoid/1/model.onnx \
    ./usr/lib/Gatehouse/licenses/onnxruntime-LICENSE ./usr/lib/Gatehouse/licenses/magika-LICENSE; do
    grep -qx "$path" <<<"$contents" || fail "$deb does not carry $path"
done
desktop="$(grep -x './usr/share/applications/.*\.desktop' <<<"$contents" | head -1)"
[ -n "$desktop" ] || fail "$deb has no desktop entry"
grep -q './usr/share/icons/hicolor/.*/apps/' <<<"$contents" || fail "$deb has no icons"
dpkg-deb --fsys-tarfile "$deb" | tar -xO "${desktop#./}" > "$work/entry.desktop"
grep -qx 'Categories=Development;' "$work/entry.desktop" || fail "the desktop entry's categories: $(grep Categories "$work/entry.desktop")"
grep -qx 'Exec=gatehouse-app' "$work/entry.desktop" || fail "the desktop entry does not start gatehouse-app: $(grep Exec "$work/entry.desktop")"

say "what $rpm declares and carries"
command -v rpm >/dev/null || fail "rpm is not installed (scripts/test.sh installs it)"
rpm -qp --requires "$rpm" 2>/dev/null | grep -q 'libwebkit2gtk-4.1.so.0' || fail "$rpm does not require WebKitGTK 4.1"
rpm -qpl "$rpm" 2>/dev/null | grep -qx '/usr/lib/Gatehouse/runtime/libonnxruntime.so' || fail "$rpm does not carry ONNX Runtime"
rpm -qpl "$rpm" 2>/dev/null | grep -qx '/usr/bin/gatehouse' || fail "$rpm does not carry the gatehouse command"

say "installing $deb with apt"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "./$deb" >/dev/null
[ "$(command -v gatehouse)" = /usr/bin/gatehouse ] || fail "gatehouse is not on the PATH after installing"
[ "$(gatehouse --version)" = "gatehouse $version" ] || fail "gatehouse --version says \`$(gatehouse --version)\`, not $version"
ldd /usr/bin/gatehouse-app | grep -q 'not found' && fail "the installed panel misses libraries: $(ldd /usr/bin/gatehouse-app | grep 'not found')"

# A person's first use: a home of their own, nothing in the environment but HOME and PATH.
home="$work/home"
mkdir -p "$home"
as_person() { env -i HOME="$home" PATH=/usr/bin:/bin "$@"; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
key="$(as_person gatehouse keys create --no-keychain --name packaged)"
as_person gatehouse settings set server.port "$port" >/dev/null 2>&1
serve() {
    as_person bash -c 'exec -a "gatehouse $0" gatehouse serve' "$work/serve-marker" > "$work/serve.log" 2>&1 &
    for _ in $(seq 100); do
        curl -s "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    fail "the installed server did not start: $(tail -5 "$work/serve.log")"
}
infer() {
    curl -s -o "$work/answer.json" -w '%{http_code}' -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
        -d '{"inputs":[{"name":"x","shape":[3,4,5],"datatype":"FP32","data":['"$(python3 -c 'print(",".join(["0.5"]*60))')"']}]}' \
        "http://127.0.0.1:$port/v2/models/sigmoid/infer"
}
serve
[ "$(infer)" = 200 ] || fail "the installed server did not answer inference: $(cat "$work/answer.json")"
grep -q '"outputs"' "$work/answer.json" || fail "no outputs in $(cat "$work/answer.json")"
curl -s "http://127.0.0.1:$port/info" | grep -q "\"version\":\"$version\"" || fail "/info does not report $version"
grep -q '/usr/lib/Gatehouse/runtime/libonnxruntime.so' "$work/serve.log" || fail "the server did not use the packaged ONNX Runtime: $(head -5 "$work/serve.log")"
pkill -f "$work/serve-marker"
sleep 0.5

say "opening the installed panel under Xvfb"
# As after the setup wizard: the panel starts the packaged server itself.
printf '{"wizard":{"step":"review","completed":true}}' > "$home/.config/gatehouse/panel.json"
display=":$((90 + RANDOM % 100))"
Xvfb "$display" -screen 0 1100x760x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
started=$(date +%s%N)
env -i HOME="$home" PATH=/usr/bin:/bin DISPLAY="$display" dbus-run-session -- \
    bash -c 'exec -a "gatehouse-app $0" gatehouse-app' "$work/serve-marker" > "$work/panel.log" 2>&1 &
ready=""
for _ in $(seq 300); do
    if curl -s "http://127.0.0.1:$port/readiness" 2>/dev/null | grep -q '"ready":true'; then ready=1; break; fi
    sleep 0.1
done
[ -n "$ready" ] || fail "the installed panel did not bring its server up: $(tail -5 "$work/panel.log")"
cold_ms=$(( ($(date +%s%N) - started) / 1000000 ))
sleep 2
mkdir -p test-artifacts
DISPLAY="$display" import -window root test-artifacts/installed-panel.png 2>/dev/null || true
pkill -f "$work/serve-marker"
kill "$xvfb" 2>/dev/null || true
for _ in $(seq 50); do pgrep -f "$work/serve-marker" >/dev/null || break; sleep 0.1; done
echo "package figures: .deb $(stat -c %s "$deb") bytes, .rpm $(stat -c %s "$rpm") bytes, installed $(dpkg-query -W -f='${Installed-Size}' "$package") KiB, installed panel start → server ready ${cold_ms} ms" >&2
before="$(cd "$home/.config/gatehouse" && sha256sum keys.toml settings.toml audit/audit.jsonl)"

say "upgrading to a newer package"
newer="$work/newer"
dpkg-deb -R "$deb" "$newer"
sed -i "s/^Version: .*/Version: $version+upgrade/" "$newer/DEBIAN/control"
dpkg-deb -b "$newer" "$work/${package}_upgrade.deb" >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$work/${package}_upgrade.deb" >/dev/null
[ "$(dpkg-query -W -f='${Version}' "$package")" = "$version+upgrade" ] || fail "the upgrade did not install"
after="$(cd "$home/.config/gatehouse" && sha256sum keys.toml settings.toml audit/audit.jsonl)"
[ "$before" = "$after" ] || fail "the upgrade changed the person's files"
serve
[ "$(infer)" = 200 ] || fail "the key stopped working across the upgrade"
pkill -f "$work/serve-marker"

say "removing the package"
removal="$(DEBIAN_FRONTEND=noninteractive apt-get remove -y "$package" 2>&1)"
grep -q 'stay in ~/.config/gatehouse' <<<"$removal" || fail "removal does not say where the person's data stays: $removal"
[ ! -e /usr/bin/gatehouse ] || fail "/usr/bin/gatehouse is still there after removal"
[ -f "$home/.config/gatehouse/keys.toml" ] || fail "removal took the person's keys"
say "the .deb and .rpm of $version hold what they should; installed, upgraded and removed cleanly"
