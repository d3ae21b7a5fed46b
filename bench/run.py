"""Runs Gatehouse's benchmarks and prints ratios measured in this one run.

Called by bench/run.sh after setup and the release build. Every server listens on 127.0.0.1 only;
every load run is bounded by BENCH_SECONDS. Results go to stdout and bench/out/latest.md.
"""

import contextlib
import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import connections
import guard
import oip_grpc
import oip_peers
import roboflow
import tensors
import panel
import supervision
import workflows

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = pathlib.Path(os.environ["GATEHOUSE_DATA"])
MODELS = DATA / "models"
LIBRARY = DATA / "runtime" / "libonnxruntime.so"
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
OUT = ROOT / "bench" / "out"
CORES = os.cpu_count() or 1
# How many runs each side of an A/B ratio gets. Even, so that each side goes first in as many pairs
# as it goes second: the first turn of a pair ran a few per cent faster here, even between two
# identical servers (3 pairs: 0.93–0.98 for the side that went first twice out of three).
PAIRS = 4


def balanced(*sides) -> list:
    """A, B, B, A, A, B, B, A (or A, B, C, C, B, A, …): each side goes first in as many rounds as
    it goes last, and the sides' mean positions are equal, so neither a drift nor a first-turn
    advantage favours one."""
    order = []
    for pair in range(PAIRS):
        order += list(sides) if pair % 2 == 0 else list(reversed(sides))
    return order


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def wait_tcp(port: int, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                time.sleep(1.0)  # the models load after the port opens
                return
        time.sleep(0.1)
    raise SystemExit(f"port {port} did not open within {timeout} s")


def magika_features(content: bytes) -> list:
    head = content[:4096].lstrip()[:1024]
    tail = content[-4096:].rstrip()[-1024:]
    return list(head) + [256] * (1024 - len(head)) + [256] * (1024 - len(tail)) + list(tail)


def bodies() -> dict:
    source = (ROOT / "crates" / "server" / "src" / "models.rs").read_bytes()
    cases = {
        "sigmoid": {"inputs": [{"name": "x", "shape": [3, 4, 5], "datatype": "FP32",
                                "data": [round(i / 10 - 3, 1) for i in range(60)]}]},
        "magika": {"inputs": [{"name": "bytes", "shape": [1, 2048], "datatype": "INT32", "data": magika_features(source)}]},
    }
    OUT.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, body in cases.items():
        path = OUT / f"body_{name}.json"
        path.write_text(json.dumps(body))
        files[name] = path
    return files


def to_us(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise SystemExit(f"cannot read the latency `{text}` printed by wrk")
    number, unit = match.groups()
    return float(number) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]


def wrk(url: str, body: pathlib.Path, connections: int, key: str = "", authorization: str = "") -> dict:
    """One load run; `key` goes as a Bearer token, or `authorization` as the whole header."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{SECONDS}s", "--latency", "-s", str(ROOT / "bench" / "post.lua"), url]
    env = {**os.environ, "BODY_FILE": str(body), "BENCH_KEY": key, "BENCH_AUTH": authorization}
    output = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    failures = int(re.search(r"NON2XX (\d+)", output).group(1))
    if failures or "Socket errors" in output:
        raise SystemExit(f"the run against {url} had errors:\n{output}")
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_us": to_us(re.search(r"^\s+50%\s+(\S+)$", output, re.MULTILINE).group(1)),
        "p99_us": to_us(re.search(r"^\s+99%\s+(\S+)$", output, re.MULTILINE).group(1)),
    }


def warm_up(url: str, body: pathlib.Path, key: str, authorization: str = "") -> None:
    """One second of load first, at the most connections a turn uses (16), so that lazy
    initialisation is not measured: sessions made when requests first overlap, each connection's
    buffers, and over TLS each connection's handshake."""
    subprocess.run(["wrk", "-t1", "-c16", "-d1s", "-s", str(ROOT / "bench" / "post.lua"), url],
                   capture_output=True, env={**os.environ, "BODY_FILE": str(body), "BENCH_KEY": key, "BENCH_AUTH": authorization},
                   check=True)


def measure(base: str, label: str, files: dict, key: str = "") -> dict:
    results = {}
    for model, body in files.items():
        url = f"{base}/v2/models/{model}/infer"
        warm_up(url, body, key)
        for connections in (1, 16):
            result = wrk(url, body, connections, key)
            results[(model, connections)] = result
            print(f"  {label:9} {model:8} c={connections:<3} {result['rps']:>10.0f} req/s  p50 {result['p50_us']:>8.0f} µs  p99 {result['p99_us']:>8.0f} µs", flush=True)
    return results


@contextlib.contextmanager
def serving(auth: bool, extra_env: dict | None = None, models: pathlib.Path = MODELS, args: tuple = ()):
    """Gatehouse in its default configuration (keys required, audit log on), or with keys off,
    serving `models`, with `args` added to `gatehouse serve`. The rate limits are raised out of
    the way: they are measured as running, not as refusing."""
    port = free_port()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "GATEHOUSE_HOME": home, "GATEHOUSE_LOG": "warn", "GATEHOUSE_AUTH": str(auth).lower(),
               "GATEHOUSE_KEY_RPS": "100000000", "GATEHOUSE_ADDRESS_RPS": "100000000",
               # Two servers are up at once in the A/B turns: each takes a free gRPC port.
               "GATEHOUSE_GRPC_PORT": "0", **(extra_env or {})}
        binary = str(ROOT / "target" / "release" / "gatehouse")
        key = ""
        if auth:
            created = subprocess.run([binary, "keys", "create", "--no-keychain", "--json", "--name", "bench"],
                                     env=env, capture_output=True, text=True, check=True).stdout
            key = json.loads(created)["key"]
        server = subprocess.Popen([binary, "serve", "--port", str(port), "--models", str(models), *args],
                                  env=env, stdout=subprocess.DEVNULL)
        try:
            if extra_env and extra_env.get("GATEHOUSE_TLS") == "true":
                wait_tcp(port)
                yield f"https://127.0.0.1:{port}", key, server.pid
            else:
                wait_http(f"http://127.0.0.1:{port}/readiness")
                yield f"http://127.0.0.1:{port}", key, server.pid
        finally:
            server.terminate()
            server.wait(timeout=20)


def gatehouse(files: dict) -> dict:
    with serving(auth=True) as (base, key, _):
        return measure(base, "gatehouse", files, key)


def alternating(files: dict, configurations: dict) -> dict:
    """Tiny model, 16 connections: for each configuration (a name → `serving` arguments), its mean
    req/s and server CPU per request in µs. All the servers are up at once, warmed up, and measured
    in alternating turns (A, B, B, A, A, B, B, A): the machine's speed drifts by up to 30 % within an
    hour here, and this way a drift hits both sides alike and no turn waits on a server starting."""
    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(serving(*args)) for name, args in configurations.items()}
        body = files["sigmoid"]
        for base, key, _ in servers.values():
            warm_up(f"{base}/v2/models/sigmoid/infer", body, key)
        rates = {name: [] for name in servers}
        request_cpu = {name: [] for name in servers}
        for name in balanced(*servers):
            base, key, pid = servers[name]
            before = cpu_seconds(pid)
            rate = wrk(f"{base}/v2/models/sigmoid/infer", body, 16, key)["rps"]
            rates[name].append(rate)
            request_cpu[name].append((cpu_seconds(pid) - before) / (rate * SECONDS) * 1e6)
            print(f"  {name:10} sigmoid c=16 {rate:>10.0f} req/s, server CPU {request_cpu[name][-1]:.1f} µs per request", flush=True)
    return {name: (sum(rates[name]) / PAIRS, sum(request_cpu[name]) / PAIRS) for name in servers}


def auth_ratio(files: dict) -> tuple:
    """Requests/s with keys required and with keys off (tiny model, 16 connections)."""
    measured = alternating(files, {"keys off": (False,), "keys on": (True,)})
    return measured["keys on"][0], measured["keys off"][0]


@contextlib.contextmanager
def peer_server(flavour: str):
    """The FastAPI peer, up; yields its base URL."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "peer_fastapi.py", str(MODELS), str(port), flavour],
                              cwd=ROOT / "bench", stdout=subprocess.DEVNULL)
    try:
        # The peer has no health route; a 405 from GET on the infer route means it is up.
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/sigmoid/infer", timeout=2)
            except urllib.error.HTTPError:
                break
            except Exception:
                if time.time() > deadline:
                    raise SystemExit("the FastAPI peer did not start")
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=20)


def peer(files: dict, flavour: str) -> dict:
    with peer_server(flavour) as base:
        return measure(base, f"fastapi-{flavour}", files)


def against_peer(files: dict) -> tuple:
    """Tiny model, 16 connections: Gatehouse (as installed) and the plain FastAPI peer both up and
    measured in alternating turns (Gatehouse, peer, peer, Gatehouse, …); their mean req/s. Each
    side's separate run above can land minutes apart, in a different speed of the machine."""
    rates = {"gatehouse": [], "fastapi": []}
    body = files["sigmoid"]
    with serving(True) as (ours, key, _), peer_server("plain") as theirs:
        targets = {"gatehouse": (f"{ours}/v2/models/sigmoid/infer", key),
                   "fastapi": (f"{theirs}/v2/models/sigmoid/infer", "")}
        for url, target_key in targets.values():
            warm_up(url, body, target_key)
        for side in balanced("gatehouse", "fastapi"):
            url, target_key = targets[side]
            rates[side].append(wrk(url, body, 16, target_key)["rps"])
            print(f"  {side:9} sigmoid c=16 {rates[side][-1]:>10.0f} req/s (alternating)", flush=True)
    return sum(rates["gatehouse"]) / PAIRS, sum(rates["fastapi"]) / PAIRS


def host_check() -> dict:
    """The Host check's cost per request, in-process (bench/src/host_check.rs)."""
    output = subprocess.run([str(ROOT / "target" / "release" / "host-check")], capture_output=True, text=True, check=True).stdout
    return json.loads(output)


def audit_chain() -> dict:
    """The audit chain's cost per line, in-process (bench/src/audit_chain.rs)."""
    output = subprocess.run([str(ROOT / "target" / "release" / "audit-chain")], capture_output=True, text=True, check=True).stdout
    return json.loads(output)


def floor(files: dict) -> dict:
    """ONNX Runtime called in-process on magika's input, in a loop of about BENCH_SECONDS."""
    binary = ROOT / "target" / "release" / "inprocess-floor"
    iterations = str(max(100, SECONDS * 110))
    output = subprocess.run([str(binary), str(LIBRARY), str(MODELS / "magika" / "1" / "model.onnx"), str(files["magika"]), iterations],
                            capture_output=True, text=True, check=True).stdout
    return json.loads(output)


def magika_ratio(files: dict) -> dict:
    """magika at one connection: Gatehouse's p50 and ONNX Runtime's in-process p50 on the same
    input, in alternating turns (in-process, server, server, in-process, …) against one server
    that stays up. Two back-to-back in-process runs differ by up to 10 % on this machine, so
    measuring each side once, minutes apart, measured the drift as much as the server."""
    p50 = {"floor": [], "server": []}
    with serving(auth=True) as (base, key, _):
        url = f"{base}/v2/models/magika/infer"
        warm_up(url, files["magika"], key)
        for kind in balanced("floor", "server"):
            if kind == "floor":
                p50[kind].append(floor(files)["p50_us"])
            else:
                p50[kind].append(wrk(url, files["magika"], 1, key)["p50_us"])
            print(f"  magika c=1 p50, {'in-process' if kind == 'floor' else 'gatehouse '}: {p50[kind][-1]:>8.0f} µs", flush=True)
    return {kind: sum(values) / PAIRS for kind, values in p50.items()}


def make_certificate(directory: pathlib.Path) -> tuple:
    """A CA and one ECDSA P-256 server certificate it signed; both TLS servers use the same
    certificate and key, so they do the same cryptography, and the client verifies the chain."""
    ca, ca_key = directory / "ca.pem", directory / "ca-key.pem"
    cert, key, request = directory / "cert.pem", directory / "key.pem", directory / "cert.csr"
    extensions = directory / "extensions.cnf"
    extensions.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n"
                          "extendedKeyUsage=serverAuth\n")
    for command in (
        ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=Gatehouse bench CA"],
        ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", key, "-out", request, "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
         "-extfile", extensions, "-out", cert],
    ):
        subprocess.run(["openssl", *map(str, command)], check=True, capture_output=True)
    return ca, cert, key


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (nginx's workers), in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = pathlib.Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in pathlib.Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return total


HANDSHAKE_CLIENTS = 4


def handshakes_per_second(port: int, server_pid: int, ca: pathlib.Path) -> tuple:
    """Full TLS 1.3 handshakes per second from bench/src/handshakes.rs (rustls, no resumption,
    the chain verified against `ca`), and the server's CPU time per handshake in µs.
    Four client threads keep two cores' worth of server busy while each waits on its round
    trips. `openssl s_time` was used before: its client spends ~0.9 ms of CPU per connection
    here, four times either server, so on two shared cores it measured mostly itself."""
    binary = ROOT / "target" / "release" / "handshakes"
    before = cpu_seconds(server_pid)
    output = subprocess.run([str(binary), f"127.0.0.1:{port}", str(ca), str(HANDSHAKE_CLIENTS), str(max(SECONDS // 2, 3))],
                            capture_output=True, text=True, timeout=120)
    if output.returncode != 0:
        raise SystemExit(f"the handshake client failed:\n{output.stderr}")
    used = cpu_seconds(server_pid) - before
    result = json.loads(output.stdout)
    return result["handshakes"] / result["seconds"], used / result["handshakes"] * 1e6


@contextlib.contextmanager
def nginx_serving(servers: str, workers: str = "auto", files: dict | None = None):
    """nginx on loopback with `servers` (server blocks naming `{prefix}` for its scratch
    directory) inside its http block, and `files` (name → text) written there first. Yields the
    scratch directory and the master's pid once the first `listen` port answers."""
    with tempfile.TemporaryDirectory() as prefix:
        # nginx's workers run as an unprivileged user and read the files at each request.
        os.chmod(prefix, 0o755)
        for name, text in (files or {}).items():
            (pathlib.Path(prefix) / name).write_text(text)
            os.chmod(pathlib.Path(prefix) / name, 0o644)
        config = pathlib.Path(prefix) / "nginx.conf"
        config.write_text(f"""
worker_processes {workers};
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
{servers.replace("{prefix}", prefix)}
}}
""")
        server = subprocess.Popen(["nginx", "-c", str(config), "-p", prefix], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_tcp(int(re.search(r"listen 127\.0\.0\.1:(\d+)", servers).group(1)))
            yield prefix, server.pid
        finally:
            server.terminate()
            server.wait(timeout=20)


@contextlib.contextmanager
def nginx(cert: pathlib.Path, key: pathlib.Path):
    port = free_port()
    with nginx_serving(f"""
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    location / {{ return 200 "ok"; }}
  }}""") as (_, pid):
        yield port, pid


def nginx_version() -> str:
    output = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr
    return output.strip().rsplit("/", 1)[-1]


def tls(files: dict) -> dict:
    """TLS 1.3 full handshakes/s against nginx on the same certificate, and keep-alive requests/s
    over TLS against plaintext (tiny model, 16 connections, keys required)."""
    with tempfile.TemporaryDirectory() as directory:
        ca, cert, key = make_certificate(pathlib.Path(directory))
        tls_env = {"GATEHOUSE_TLS": "true", "SSL_CERTFILE": str(cert), "SSL_KEYFILE": str(key)}
        # Both servers up at once, measured in turns (nginx, Gatehouse, Gatehouse, nginx, …) so
        # drift in the machine's speed hits both.
        handshakes = {"nginx": [], "gatehouse": []}
        cpu = {"nginx": [], "gatehouse": []}
        with nginx(cert, key) as (port, nginx_pid), serving(True, tls_env) as (base, _, gatehouse_pid):
            servers = {"nginx": (port, nginx_pid), "gatehouse": (int(base.rsplit(":", 1)[1]), gatehouse_pid)}
            for kind in balanced("nginx", "gatehouse"):
                rate, cpu_us = handshakes_per_second(*servers[kind], ca)
                handshakes[kind].append(rate)
                cpu[kind].append(cpu_us)
        ours, theirs = (sum(handshakes[k]) / PAIRS for k in ("gatehouse", "nginx"))
        our_cpu, their_cpu = (sum(cpu[k]) / PAIRS for k in ("gatehouse", "nginx"))
        print(f"  handshakes/s: gatehouse {ours:.0f}, nginx {theirs:.0f} "
              f"(turns: {', '.join(f'{r:.0f}' for r in handshakes['gatehouse'])} vs {', '.join(f'{r:.0f}' for r in handshakes['nginx'])}); "
              f"server CPU per handshake: gatehouse {our_cpu:.0f} µs, nginx {their_cpu:.0f} µs", flush=True)
        # wrk does its side of TLS with OpenSSL on the same two cores, so the server's own CPU per
        # request is recorded too: it is what TLS costs Gatehouse, apart from what it costs wrk.
        transport = alternating(files, {"plaintext": (True,), "TLS": (True, tls_env)})
    (tls_rps, tls_cpu), (plain_rps, plain_cpu) = transport["TLS"], transport["plaintext"]
    return {"handshakes": ours, "nginx_handshakes": theirs, "handshake_cpu_us": our_cpu, "nginx_handshake_cpu_us": their_cpu,
            "tls_rps": tls_rps, "plain_rps": plain_rps, "tls_cpu_us": tls_cpu, "plain_cpu_us": plain_cpu}


def main() -> None:
    files = bodies()
    print(f"Benchmarks on {CORES} cores, {SECONDS} s per load run, wrk with 1 thread, loopback only;", flush=True)
    print("Gatehouse runs as installed: API keys required, audit log on (rate limits raised out of the way)", flush=True)
    ours = gatehouse(files)
    magika = magika_ratio(files)
    theirs = peer(files, "plain")
    tuned = peer(files, "tuned")
    alternated = against_peer(files)
    auth_on, auth_off = auth_ratio(files)
    transport = tls(files)
    hosts = host_check()
    chain = audit_chain()
    supervised = supervision.measure()
    python_step = workflows.measure()
    idle = panel.measure()
    flood = connections.measure(serving)
    guarded = guard.measure(files)
    large = tensors.measure()
    over_grpc = oip_grpc.measure()
    seeds = roboflow.measure()
    peers = oip_peers.measure()
    rows = [
        (f"tiny model (sigmoid), 16 connections: Gatehouse ÷ FastAPI (plain) req/s, {PAIRS} alternating turns each", alternated[0] / alternated[1], "≥ 20"),
        ("the same from the separate runs below", ours[("sigmoid", 16)]["rps"] / theirs[("sigmoid", 16)]["rps"], "—"),
        ("tiny model (sigmoid), 16 connections: Gatehouse ÷ FastAPI (tuned) req/s", ours[("sigmoid", 16)]["rps"] / tuned[("sigmoid", 16)]["rps"], "—"),
        ("tiny model (sigmoid), 1 connection: Gatehouse ÷ FastAPI (plain) req/s", ours[("sigmoid", 1)]["rps"] / theirs[("sigmoid", 1)]["rps"], "—"),
        ("tiny model (sigmoid), 1 connection: Gatehouse p50 (µs)", ours[("sigmoid", 1)]["p50_us"], "≤ 150"),
        (f"magika, 1 connection: Gatehouse p50 ÷ in-process p50 ({PAIRS} alternating turns each)", magika["server"] / magika["floor"], "≤ 1.05"),
        ("magika, 16 connections: Gatehouse ÷ FastAPI (tuned) req/s", ours[("magika", 16)]["rps"] / tuned[("magika", 16)]["rps"], "—"),
        ("tiny model, 16 connections: keys required ÷ keys off req/s", auth_on / auth_off, "≥ 0.95"),
        ("TLS 1.3 full handshakes/s: Gatehouse ÷ nginx (same certificate)", transport["handshakes"] / transport["nginx_handshakes"], "≥ 1.2"),
        ("keep-alive TLS ÷ plaintext req/s (tiny model, 16 connections)", transport["tls_rps"] / transport["plain_rps"], "≥ 0.85"),
        ("supervisor: crash → ready again ÷ cold start → ready (medians)", supervised["crash_ms"] / supervised["cold_ms"], "≤ 1.5"),
        ("full checklist against a local server (ms, median)", supervised["checklist_ms"], "< 200"),
        ("a trivial python step's added workflow latency, p50 (ms)", python_step["added_ms"], "≤ 60"),
        ("the Host check's cost per request ÷ the server's CPU per tiny-model request (%, plaintext, 16 connections)", 100 * hosts["cost_ns"] / 1000 / transport["plain_cpu_us"], "≤ 2"),
        ("the audit chain's cost per request ÷ the server's CPU per tiny-model request (%, plaintext, 16 connections)", 100 * chain["cost_ns"] / 1000 / transport["plain_cpu_us"], "≤ 3"),
        ("req/s with the audit chain ÷ without, from that cost (the server CPU-bound)", 1 / (1 + chain["cost_ns"] / 1000 / transport["plain_cpu_us"]), "≥ 0.97"),
        (f"p99 of a keep-alive client with {connections.IDLE} idle connections + {connections.SLOWLORIS} slowloris senders ÷ without ({len(connections.TURNS) // 2} alternating turns each)", flood["ratio"], "≤ 2"),
        ("the same client's failed requests under that attack", sum(flood["errors"].values()), "0"),
        ("guard mode, MLServer, 16 connections: through the guard ÷ direct req/s", guarded["guard"]["rps"] / guarded["direct"]["rps"], "≥ 0.9"),
        ("guard mode, MLServer, 1 connection: p50 added by the guard (µs)", guarded["guard_1"]["p50_us"] - guarded["direct_1"]["p50_us"], "≤ 100"),
        ("the same in front of a static upstream (nginx answering at once): the guard's own p50 (µs)", guarded["static_1"]["static guard"]["p50_us"] - guarded["static_1"]["static direct"]["p50_us"], "—"),
        ("guard (TLS + key) ÷ nginx (TLS + basic auth + proxy_pass, as the guide writes it) req/s, 16 connections", guarded["against"]["guard TLS + key"]["rps"] / guarded["against"]["nginx as written"]["rps"], "≥ 1.0"),
        ("guard (TLS + key) ÷ nginx with upstream keep-alive req/s, 16 connections", guarded["against"]["guard TLS + key"]["rps"] / guarded["against"]["nginx keep-alive"]["rps"], "—"),
        ("guard p50 ÷ nginx (as written) p50, 1 connection", guarded["against_1"]["guard TLS + key"]["p50_us"] / guarded["against_1"]["nginx as written"]["p50_us"], "≤ 1.0"),
        ("a 1×3×224×224 FP32 input, 16 connections: binary ÷ JSON req/s", large[("binary", 16)]["rps"] / large[("json", 16)]["rps"], "—"),
        ("the same, 1 connection: binary p50 (µs) — ONNX Runtime in-process takes floor_p50_us without any transport", large[("binary", 1)]["p50_us"], "—"),
        ("gRPC tiny model, 16 at once: inferences/s (perf_analyzer)", over_grpc["sigmoid grpc c=16"]["rps"], "—"),
        (f"gRPC ÷ HTTP inferences/s, tiny model, 16 at once (perf_analyzer both, {PAIRS} alternating turns)", over_grpc["sigmoid grpc c=16"]["rps"] / over_grpc["sigmoid http c=16"]["rps"], "≥ 0.8"),
        ("gRPC image 1×3×224×224, 1 at a time: p50 ÷ ONNX Runtime in-process p50 (alternating turns)", over_grpc["image c=1"]["p50_us"] / over_grpc["image floor_p50_us"], "≤ 1.10"),
        (f"tiny model, 16 connections, HTTP JSON: Gatehouse ÷ the faster of MLServer and KServe req/s ({PAIRS} alternating turns)", peers["sigmoid"]["gatehouse"]["rps"] / max(peers["sigmoid"]["mlserver"]["rps"], peers["sigmoid"]["kserve"]["rps"]), "≥ 15"),
        (f"magika, 16 connections, HTTP JSON: Gatehouse ÷ the faster of MLServer and KServe req/s ({PAIRS} alternating turns)", peers["magika"]["gatehouse"]["rps"] / max(peers["magika"]["mlserver"]["rps"], peers["magika"]["kserve"]["rps"]), "≥ 1.5"),
        ("guard mode, Roboflow Inference, GET /info, 1 connection: p50 through the guard ÷ direct", seeds["info"]["guard"]["p50_us"] / seeds["info"]["direct"]["p50_us"], "≤ 1.05"),
        ("guard mode, Roboflow Inference, a built-in workflow, 1 connection: p50 through the guard ÷ direct", seeds["workflow"]["guard"]["p50_us"] / seeds["workflow"]["direct"]["p50_us"], "≤ 1.05"),
        ("guard mode: Gatehouse's idle memory beside Roboflow Inference (MB PSS; Roboflow's own in the detail)", seeds["memory"]["gatehouse_mb"], "—"),
        ("panel idle: app + WebKit + server memory (MB PSS, highest sample)", idle["rss_mb"], "≤ 180"),
        ("floor: a bare WebKitGTK window (MiniBrowser, about:blank; MB PSS, highest sample)", idle["webkit_floor_mb"], "—"),
        ("panel idle: CPU over a minute (% of one core)", idle["cpu_percent"], "< 1"),
    ]
    lines = ["| measure | this run | target |", "|---|---|---|"]
    lines += [f"| {name} | {value:.2f} | {target} |" for name, value, target in rows]
    detail = ["", "| server | model | connections | req/s | p50 µs | p99 µs |", "|---|---|---|---|---|---|"]
    peers = (("FastAPI + uvicorn, plain (1 process, h11, asyncio)", theirs),
             (f"FastAPI + uvicorn, tuned ({CORES} workers, httptools, uvloop)", tuned))
    for label, results in (("Gatehouse", ours),) + peers:
        for (model, connections), r in results.items():
            detail.append(f"| {label} | {model} | {connections} | {r['rps']:.0f} | {r['p50_us']:.0f} | {r['p99_us']:.0f} |")
    detail.append(f"| Gatehouse, alternating with the plain peer (mean of {PAIRS} turns) | sigmoid | 16 | {alternated[0]:.0f} | — | — |")
    detail.append(f"| FastAPI + uvicorn, plain, alternating with Gatehouse (mean of {PAIRS} turns) | sigmoid | 16 | {alternated[1]:.0f} | — | — |")
    detail.append(f"| ONNX Runtime in-process (mean of {PAIRS} turns) | magika | — | — | {magika['floor']:.0f} | — |")
    detail.append(f"| Gatehouse, alternating with it (mean of {PAIRS} turns) | magika | 1 | — | {magika['server']:.0f} | — |")
    detail.append(f"| Gatehouse, keys required (mean of {PAIRS} alternating turns) | sigmoid | 16 | {auth_on:.0f} | — | — |")
    detail.append(f"| Gatehouse, keys off (mean of {PAIRS} alternating turns) | sigmoid | 16 | {auth_off:.0f} | — | — |")
    detail.append(f"| Gatehouse over TLS, keep-alive (mean of {PAIRS} alternating turns; server CPU per request: {transport['tls_cpu_us']:.1f} µs) | sigmoid | 16 | {transport['tls_rps']:.0f} | — | — |")
    detail.append(f"| Gatehouse plaintext, keep-alive (mean of {PAIRS} alternating turns; server CPU per request: {transport['plain_cpu_us']:.1f} µs) | sigmoid | 16 | {transport['plain_rps']:.0f} | — | — |")
    detail.append(f"| Gatehouse TLS 1.3 full handshakes/s (server CPU per handshake: {transport['handshake_cpu_us']:.0f} µs) | — | {HANDSHAKE_CLIENTS} client threads | {transport['handshakes']:.0f} | — | — |")
    detail.append(f"| nginx {nginx_version()} TLS 1.3 full handshakes/s (server CPU per handshake: {transport['nginx_handshake_cpu_us']:.0f} µs) | — | {HANDSHAKE_CLIENTS} client threads | {transport['nginx_handshakes']:.0f} | — | — |")
    detail.append(f"| Gatehouse cold start → ready, ms (median of {supervision.SAMPLES}) | magika + sigmoid | — | — | {supervised['cold_ms']:.0f} | — |")
    detail.append(f"| Gatehouse crash → ready under the supervisor, ms (median of {supervision.SAMPLES}) | magika + sigmoid | — | — | {supervised['crash_ms']:.0f} | — |")
    detail.append(f"| `gatehouse check` whole command, ms (median of {supervision.SAMPLES}) | — | — | — | {supervised['checklist_wall_ms']:.0f} | — |")
    detail.append(f"| workflow softmax → top_k, p50 ms (median of {workflows.REQUESTS}) | — | 1 | — | {python_step['plain_ms']:.1f} | — |")
    detail.append(f"| the same plus a python step, p50 ms (median of {workflows.REQUESTS}) | — | 1 | — | {python_step['python_ms']:.1f} | — |")
    detail.append(f"| the Host check in-process: a request through a bare router {hosts['without_ns']:.0f} ns, with the check {max(hosts['with_name_ns'], hosts['with_address_ns']):.0f} ns (mean of {hosts['turns']} alternating turns of {hosts['iterations']}) | — | — | — | — | — |")
    detail.append(f"| Gatehouse p99 µs of one keep-alive client, quiet (mean of {len(connections.TURNS) // 2} turns of {connections.REQUESTS}) | sigmoid | 1 | — | — | {flood['p99_quiet_us']:.0f} |")
    detail.append(f"| the same with {connections.IDLE} idle + {connections.SLOWLORIS} slowloris connections (attack sockets the server closed and the attacker reopened: {flood['attack_sockets_reopened']}) | sigmoid | 1 | — | — | {flood['p99_attacked_us']:.0f} |")
    for model, sides in peers.items():
        for name, label in (("gatehouse", "Gatehouse, alternating with MLServer and KServe"), ("mlserver", "Seldon MLServer 1.7.1 (one process)"), ("kserve", "KServe 0.21 model server")):
            detail.append(f"| {label} (mean of {PAIRS} turns) | {model} | 16 | {sides[name]['rps']:.0f} | {sides[name]['p50_us']:.0f} | — |")
    detail.append(f"| Roboflow Inference idle, beside the guard (MB PSS: {seeds['memory']['upstream_mb']:.0f}; Gatehouse's: {seeds['memory']['gatehouse_mb']:.0f}; ready through the guard after {seeds['ready_s']:.1f} s) | — | — | — | — | — |")
    text = "\n".join(lines + detail) + "\n"
    (OUT / "latest.md").write_text(text)
    print()
    print(text)


if __name__ == "__main__":
    main()
