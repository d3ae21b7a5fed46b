"""Guard mode's cost, measured against the same upstream in the same run: Seldon MLServer 1.7.1
serving the tiny model (sigmoid) through its ONNX Runtime runtime, reached

  - directly (plain HTTP, no key: what a guard stands in front of),
  - through `gatehouse guard` (plain HTTP, API key, audit log on),
  - through `gatehouse guard` over TLS with a key,
  - through nginx doing the TF Serving guide's recipe (TLS, basic auth, proxy_pass), as written
    (a new upstream connection per request) and tuned (upstream keep-alive);

and, to tell the guard's own cost at one connection from what a slow upstream's idle time costs
in wake-ups, a static upstream (nginx returning MLServer's answer at once) direct and guarded.

Part of bench/run.py; runs alone too, after a release build and ./scripts/test.sh's setup:

    GATEHOUSE_DATA=~/.local/share/gatehouse python3 bench/guard.py

Every server listens on 127.0.0.1; every load run is bounded by BENCH_SECONDS. Turns alternate
(A, B, B, A, …) so the machine's drift hits each side alike.
"""

import base64
import contextlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import urllib.request

import run


@contextlib.contextmanager
def mlserver(model: str = "sigmoid"):
    # Read here, not at import: run.py imports this module before it has its own constants.
    venv = pathlib.Path(os.environ.get("GATEHOUSE_UPSTREAMS_VENV", run.DATA / "upstreams-venv"))
    script = run.ROOT / "tests" / "e2e" / "upstreams" / "mlserver" / "serve.py"
    http, grpc = run.free_port(), run.free_port()
    server = subprocess.Popen([str(venv / "bin" / "python"), str(script),
                               str(run.MODELS / model / "1" / "model.onnx"), str(http), str(grpc), model],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        run.wait_http(f"http://127.0.0.1:{http}/v2/health/ready")
        yield http, server.pid, grpc
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=20)


@contextlib.contextmanager
def guard(upstream: int, tls_env: dict | None = None):
    port = run.free_port()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "GATEHOUSE_HOME": home, "GATEHOUSE_LOG": "warn",
               "GATEHOUSE_KEY_RPS": "100000000", "GATEHOUSE_ADDRESS_RPS": "100000000", **(tls_env or {})}
        binary = str(run.ROOT / "target" / "release" / "gatehouse")
        created = subprocess.run([binary, "keys", "create", "--no-keychain", "--json", "--name", "bench"],
                                 env=env, capture_output=True, text=True, check=True).stdout
        key = json.loads(created)["key"]
        server = subprocess.Popen([binary, "guard", "--preset", "oip", "--upstream", f"http://127.0.0.1:{upstream}",
                                   "--port", str(port)], env=env, stdout=subprocess.DEVNULL)
        try:
            scheme = "https" if tls_env else "http"
            if tls_env:
                run.wait_tcp(port)
            else:
                run.wait_http(f"http://127.0.0.1:{port}/_gatehouse/readiness")
            yield f"{scheme}://127.0.0.1:{port}", f"Bearer {key}", server.pid
        finally:
            server.terminate()
            server.wait(timeout=20)


@contextlib.contextmanager
def nginx(upstream: int, cert: pathlib.Path, key: pathlib.Path, keepalive: bool):
    """The guide's server block, over TLS, with an htpasswd file made by openssl (apr1, what
    `htpasswd` writes)."""
    port = run.free_port()
    hashed = subprocess.run(["openssl", "passwd", "-apr1", "bench-password"], capture_output=True,
                            text=True, check=True).stdout.strip()
    upstream_block = f"upstream model {{ server 127.0.0.1:{upstream}; keepalive 32; }}" if keepalive else ""
    target = "http://model" if keepalive else f"http://127.0.0.1:{upstream}"
    keepalive_lines = 'proxy_http_version 1.1;\n      proxy_set_header Connection "";' if keepalive else ""
    with run.nginx_serving(f"""
  {upstream_block}
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    location /v2/ {{
      auth_basic "Restricted";
      auth_basic_user_file {{prefix}}/htpasswd;
      proxy_pass {target};
      proxy_set_header Host $host;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      {keepalive_lines}
    }}
  }}""", files={"htpasswd": f"apiuser:{hashed}\n"}) as (_, pid):
        credentials = base64.b64encode(b"apiuser:bench-password").decode()
        yield f"https://127.0.0.1:{port}", f"Basic {credentials}", pid


@contextlib.contextmanager
def static_upstream(answer: bytes):
    """nginx answering every request with `answer` at once: an upstream that takes almost no time,
    so that what the guard adds is its own work and not the wake-ups a slow upstream's idle
    time costs."""
    port = run.free_port()
    quoted = answer.decode().replace("'", "\\'")
    with run.nginx_serving(f"""
  server {{
    listen 127.0.0.1:{port};
    location / {{ default_type application/json; return 200 '{quoted}'; }}
  }}""", workers="1"):
        yield port


def turns(sides: dict, body: pathlib.Path, connections: int, model: str = "sigmoid") -> dict:
    """Each side's mean req/s and p50 over alternating turns; sides: name → (base, authorization)."""
    path = f"/v2/models/{model}/infer"
    for base, authorization, _ in sides.values():
        run.warm_up(f"{base}{path}", body, "", authorization)
    results = {name: [] for name in sides}
    for name in run.balanced(*sides):
        base, authorization, _ = sides[name]
        result = run.wrk(f"{base}{path}", body, connections, "", authorization)
        results[name].append(result)
        print(f"  {name:18} {model} c={connections:<3} {result['rps']:>8.0f} req/s  p50 {result['p50_us']:>7.0f} µs", flush=True)
    return {name: {"rps": sum(r["rps"] for r in rs) / len(rs), "p50_us": sum(r["p50_us"] for r in rs) / len(rs)}
            for name, rs in results.items()}


def measure(files: dict) -> dict:
    body = files["sigmoid"]
    with tempfile.TemporaryDirectory() as directory, mlserver() as (upstream, _, _):
        ca, cert, key = run.make_certificate(pathlib.Path(directory))
        tls_env = {"GATEHOUSE_TLS": "true", "SSL_CERTFILE": str(cert), "SSL_KEYFILE": str(key)}
        with contextlib.ExitStack() as stack:
            direct = (f"http://127.0.0.1:{upstream}", "", None)
            guarded = stack.enter_context(guard(upstream))
            print("guard mode: MLServer direct vs through `gatehouse guard` (plain HTTP, key required)", flush=True)
            sixteen = turns({"direct": direct, "guard": guarded}, body, 16)
            one = turns({"direct": direct, "guard": guarded}, body, 1)
        request = urllib.request.Request(f"http://127.0.0.1:{upstream}/v2/models/sigmoid/infer", data=body.read_bytes(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = response.read()
        with static_upstream(answer) as port, contextlib.ExitStack() as stack:
            print("guard mode: a static upstream (nginx `return 200` with MLServer's answer) direct vs through the guard", flush=True)
            static = turns({"static direct": (f"http://127.0.0.1:{port}", "", None),
                            "static guard": stack.enter_context(guard(port))}, body, 1)
        with contextlib.ExitStack() as stack:
            sides = {
                "guard TLS + key": stack.enter_context(guard(upstream, tls_env)),
                "nginx as written": stack.enter_context(nginx(upstream, cert, key, keepalive=False)),
                "nginx keep-alive": stack.enter_context(nginx(upstream, cert, key, keepalive=True)),
            }
            print("guard mode: `gatehouse guard` (TLS + key) vs nginx (TLS + basic auth + proxy_pass)", flush=True)
            against = turns(sides, body, 16)
            against_one = turns(sides, body, 1)
    return {"direct": sixteen["direct"], "guard": sixteen["guard"], "direct_1": one["direct"], "guard_1": one["guard"],
            "against": against, "against_1": against_one, "static_1": static}


if __name__ == "__main__":
    measured = measure(run.bodies())
    print(json.dumps(measured, indent=2))
    sys.exit(0)
