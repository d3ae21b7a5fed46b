"""The connection-flood benchmark: what 2,000 idle connections and a slowloris client do to a
well-behaved client's latency. Part of bench/run.py; runs alone too, after a release build:

    GATEHOUSE_DATA=~/.local/share/gatehouse python3 bench/connections.py

One server on 127.0.0.1 with keys required and the audit log on. A well-behaved client sends
tiny-model inferences one after another on a keep-alive connection; in alternating turns (quiet,
attacked, attacked, quiet, …) another thread holds 2,000 idle TCP connections open (opening a new
one whenever the server closes one at its header timeout) and 50 slowloris connections each send
a header byte every half second. The figure is the ratio of the mean p99 under attack to the mean
p99 without it, and the well-behaved client's errors (which must be none).
"""

import http.client
import json
import os
import resource
import socket
import statistics
import threading
import time

IDLE = 2000
SLOWLORIS = 50
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "3000"))
TURNS = ["quiet", "attacked", "attacked", "quiet", "quiet", "attacked", "attacked", "quiet"]


def well_behaved(port: int, key: str) -> tuple:
    body = json.dumps({"inputs": [{"name": "x", "shape": [3, 4, 5], "datatype": "FP32",
                                   "data": [i / 60 for i in range(60)]}]})
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies, errors = [], 0
    for _ in range(REQUESTS):
        started = time.perf_counter()
        try:
            connection.request("POST", "/v2/models/sigmoid/infer", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                errors += 1
        except OSError:
            errors += 1
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            continue
        latencies.append(time.perf_counter() - started)
    connection.close()
    return latencies, errors


class Attack:
    """Idle sockets and slowloris senders, kept at their numbers until stopped."""

    def __init__(self, port: int):
        self.port = port
        self.stop = threading.Event()
        self.reopened = 0
        self.threads = [threading.Thread(target=self.idle, daemon=True),
                        threading.Thread(target=self.slowloris, daemon=True)]

    def connect(self) -> socket.socket | None:
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            s.setblocking(False)
            return s
        except OSError:
            return None

    @staticmethod
    def closed(s: socket.socket) -> bool:
        try:
            return s.recv(1) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def idle(self) -> None:
        sockets = [s for s in (self.connect() for _ in range(IDLE)) if s]
        while not self.stop.is_set():
            for i, s in enumerate(sockets):
                if self.closed(s):
                    s.close()
                    sockets[i] = self.connect() or s
                    self.reopened += 1
            self.stop.wait(0.5)
        for s in sockets:
            s.close()

    def slowloris(self) -> None:
        def opened():
            s = self.connect()
            if s:
                s.send(b"POST /v2/models/sigmoid/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            return s
        sockets = [s for s in (opened() for _ in range(SLOWLORIS)) if s]
        while not self.stop.is_set():
            for i, s in enumerate(sockets):
                try:
                    s.send(b"a")
                except OSError:
                    s.close()
                    sockets[i] = opened() or s
                    self.reopened += 1
            self.stop.wait(0.5)
        for s in sockets:
            s.close()

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        time.sleep(2)  # every socket open before the measured client starts
        return self

    def __exit__(self, *_):
        self.stop.set()
        for thread in self.threads:
            thread.join()


def p99(latencies: list) -> float:
    return statistics.quantiles(latencies, n=100)[98]


def measure(serving) -> dict:
    """`serving` is bench/run.py's: Gatehouse as installed, rate limits out of the way."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    with serving(auth=True) as (base, key, _):
        port = int(base.rsplit(":", 1)[1])
        well_behaved(port, key)  # warm-up
        turns = {"quiet": [], "attacked": []}
        errors = {"quiet": 0, "attacked": 0}
        reopened = 0
        for turn in TURNS:
            if turn == "attacked":
                with Attack(port) as attack:
                    latencies, failed = well_behaved(port, key)
                reopened += attack.reopened
            else:
                latencies, failed = well_behaved(port, key)
            turns[turn].append(p99(latencies) * 1e6)
            errors[turn] += failed
    quiet, attacked = statistics.mean(turns["quiet"]), statistics.mean(turns["attacked"])
    return {
        "p99_quiet_us": round(quiet, 1),
        "p99_attacked_us": round(attacked, 1),
        "ratio": round(attacked / quiet, 2),
        "turns_us": {k: [round(v, 1) for v in values] for k, values in turns.items()},
        "errors": errors,
        "attack_sockets_reopened": reopened,
        "requests_per_turn": REQUESTS,
    }


if __name__ == "__main__":
    import run

    print(json.dumps(measure(run.serving), indent=2))
