"""The panel's idle cost: memory (PSS) of the app, its WebKit processes and the server it runs,
and their CPU use over a minute with the dashboard open and nothing calling the server. Part of
bench/run.py; runs alone too, after a release build of gatehouse-app and gatehouse, under a
display (Xvfb is started when there is none):

    GATEHOUSE_DATA=~/.local/share/gatehouse python3 bench/panel.py

Beside it, the floor under the memory figure: WebKitGTK's own MiniBrowser (shipped with the
library Tauri renders through on Linux) showing about:blank on the same display with the same
WebKit settings, i.e. what any Tauri app on this machine holds before it draws anything.
"""

import glob

import os
import pathlib
import socket
import subprocess
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
RELEASE = ROOT / "target" / "release"
MODELS = pathlib.Path(os.environ["GATEHOUSE_DATA"]) / "models"
SETTLE_SECONDS = 15
IDLE_SECONDS = 60
TICKS = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree(root: int) -> list:
    """`root` and every process below it."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def _cpu_seconds(pids: list) -> float:
    total = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / TICKS


def _pss_bytes(pids: list) -> int:
    """Proportional set size: each shared page counted once across the processes that share it,
    so WebKit's processes do not count the same libraries three times."""
    total = 0
    for pid in pids:
        try:
            for line in open(f"/proc/{pid}/smaps_rollup"):
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def _highest_pss(root: int) -> int:
    """The highest PSS of `root`'s process tree, sampled every 5 s over IDLE_SECONDS."""
    samples, started = [], time.monotonic()
    while time.monotonic() - started < IDLE_SECONDS:
        time.sleep(5)
        samples.append(_pss_bytes(_tree(root)))
    return max(samples)


def webkit_floor(env: dict) -> float:
    """MB PSS of a bare WebKitGTK window: MiniBrowser on about:blank, settled and sampled the
    way the panel is."""
    found = sorted(glob.glob("/usr/lib/*/webkit2gtk-4.1/MiniBrowser"))
    if not found:
        raise SystemExit("WebKitGTK's MiniBrowser is missing; it comes with libwebkit2gtk-4.1-0 (scripts/setup.sh installs it)")
    # The panel sets this for itself (src-tauri/src/main.rs); the floor gets the same.
    browser = subprocess.Popen([found[0], "about:blank"], env={**env, "WEBKIT_DISABLE_COMPOSITING_MODE": "1"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(SETTLE_SECONDS)
        return _highest_pss(browser.pid) / 2**20
    finally:
        browser.terminate()
        browser.wait(timeout=30)


def measure() -> dict:
    xvfb = None
    env = dict(os.environ)
    if not env.get("DISPLAY"):
        xvfb = subprocess.Popen(["Xvfb", ":87", "-screen", "0", "1280x900x24"], stderr=subprocess.DEVNULL)
        env["DISPLAY"] = ":87"
        time.sleep(1)
    with tempfile.TemporaryDirectory() as home:
        settings = pathlib.Path(home) / "settings.toml"
        settings.write_text(f'[server]\nport = {_free_port()}\nmodels = "{MODELS}"\n')
        settings.chmod(0o600)
        # A person who has finished the setup wizard: the app starts the server and opens the dashboard.
        (pathlib.Path(home) / "panel.json").write_text('{"wizard": {"step": "review", "completed": true}}')
        env.update(GATEHOUSE_HOME=home, GATEHOUSE_BIN=str(RELEASE / "gatehouse"), GATEHOUSE_LOG="warn")
        app = subprocess.Popen([str(RELEASE / "gatehouse-app")], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(SETTLE_SECONDS)
            pids = _tree(app.pid)
            cpu_before, started = _cpu_seconds(pids), time.monotonic()
            before = {pid: _cpu_seconds([pid]) for pid in pids}
            highest = _highest_pss(app.pid)
            pids = _tree(app.pid)
            elapsed = time.monotonic() - started
            cpu = (_cpu_seconds(pids) - cpu_before) / elapsed * 100
            per_process = {}
            for pid in pids:
                name = open(f"/proc/{pid}/comm").read().strip()
                per_process[name] = per_process.get(name, 0) + (_cpu_seconds([pid]) - before.get(pid, 0)) / elapsed * 100
        finally:
            app.terminate()
            app.wait(timeout=30)
    try:
        floor = webkit_floor(env)
    finally:
        if xvfb:
            xvfb.terminate()
    result = {"rss_mb": highest / 2**20, "cpu_percent": cpu, "per_process": per_process, "webkit_floor_mb": floor}
    shares = ", ".join(f"{name} {share:.2f} %" for name, share in sorted(per_process.items()))
    print(f"  panel idle: {result['rss_mb']:.0f} MB (PSS) at most, {cpu:.2f} % CPU over {IDLE_SECONDS} s ({shares}); "
          f"a bare WebKitGTK window: {floor:.0f} MB", flush=True)
    return result


if __name__ == "__main__":
    r = measure()
    print(f"idle memory {r['rss_mb']:.0f} MB PSS (target ≤ 180; a bare WebKitGTK window alone: {r['webkit_floor_mb']:.0f} MB), "
          f"idle CPU {r['cpu_percent']:.2f} % (target < 1)")
