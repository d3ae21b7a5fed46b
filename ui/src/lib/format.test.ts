import { describe, expect, it } from "vitest";
import { ago, auditLine, bytes, curlLine, eventEvidence, withEvent, keyState, logDetails, millis, rate, reportChanged, sparkline, stateTone, timeLeft, tryPath } from "./format";
import type { Item, KeyRecord, Report } from "./types";

describe("format", () => {
  it("says a security event's evidence in one line, the audit line last", () => {
    expect(eventEvidence({ address: "10.0.0.9", failures: 12, window_seconds: 60, audit_seq: 42 })).toBe("address 10.0.0.9 · 12 failures · audit #42");
    expect(eventEvidence({ key_id: "k1", addresses: ["127.0.0.2", "127.0.0.3"] })).toBe("key k1 · from 127.0.0.2 and 127.0.0.3");
    expect(eventEvidence({ certificate: "/c/server.pem", days_left: 3 })).toBe("certificate /c/server.pem · days left 3");
    expect(eventEvidence({})).toBe("");
  });

  it("says an audit line in words, without its chain fields", () => {
    expect(auditLine({ event: "request", method: "GET", route: "/v2/models/{model}", status: 401, reason: "malformed", key_id: null, address: "127.0.0.1", seq: 4, prev: "sha256:00" }))
      .toBe("GET /v2/models/{model} 401 malformed · key none · 127.0.0.1");
    expect(auditLine({ event: "key_created", key_id: "k1", name: "ci", actor: "cli", seq: 1, prev: "sha256:00" })).toBe("key_created key_id=k1 name=ci actor=cli");
  });

  it("adds a live security event once, however it arrives", () => {
    const burst = { time: "2026-12-03T10:00:00Z", kind: "auth_burst", summary: "10 failed" };
    const lockout = { time: "2026-12-03T10:00:01Z", kind: "lockout", summary: "locked out" };
    expect(withEvent([burst], burst, 10)).toEqual([burst]);
    expect(withEvent([burst], lockout, 10)).toEqual([burst, lockout]);
    expect(withEvent([burst], lockout, 1)).toEqual([lockout]);
  });

  it("tries a route the guarded server has, or a default model on Gatehouse's own", () => {
    expect(tryPath(null)).toBe("/v2/models/magika");
    expect(tryPath({ upstream: null, launch: [], preset: "ollama" })).toBe("/v2/models/magika");
    expect(tryPath({ upstream: "http://127.0.0.1:11434", launch: [], preset: "ollama" })).toBe("/api/tags");
    expect(tryPath({ upstream: null, launch: ["llama-server"], preset: "openai" })).toBe("/v1/models");
    expect(tryPath({ upstream: "http://127.0.0.1:8000", launch: [], preset: "oip" })).toBe("/v2");
    expect(tryPath({ upstream: null, launch: ["{preset}"], preset: "roboflow" })).toBe("/model/registry");
  });

  it("says how long an exposure has left, and nothing once it is over", () => {
    const now = Date.parse("2026-12-02T12:00:00Z");
    expect(timeLeft("2026-12-02T12:42:00Z", now)).toBe("42 min left");
    expect(timeLeft("2026-12-02T13:05:00Z", now)).toBe("1 h 5 min left");
    expect(timeLeft("2026-12-02T14:00:00Z", now)).toBe("2 h left");
    expect(timeLeft("2026-12-02T12:00:20Z", now)).toBe("1 min left");
    expect(timeLeft("2026-12-02T11:59:00Z", now)).toBeNull();
    expect(timeLeft(null, now)).toBeNull();
    expect(timeLeft("not a time", now)).toBeNull();
  });

  it("gives every state a tone", () => {
    expect(stateTone("ready")).toBe("good");
    expect(stateTone("degraded")).toBe("warn");
    expect(stateTone("crash-looping")).toBe("bad");
    expect(stateTone("stopped")).toBe("idle");
  });

  it("writes sizes, rates and durations for people", () => {
    expect(bytes(52 * 1024 * 1024)).toBe("52 MiB");
    expect(rate(2500)).toBe("2.5k/s");
    expect(rate(0.5)).toBe("0.5/s");
    expect(millis(0.25)).toBe("250 µs");
    expect(millis(null)).toBe("–");
    expect(ago("2026-01-01T00:00:00Z", Date.parse("2026-01-01T00:02:00Z"))).toBe("2 min ago");
  });

  it("scales a sparkline to its box and skips gaps", () => {
    expect(sparkline([0, 5, 10], 100, 20)).toBe("0.0,20.0 50.0,10.0 100.0,0.0");
    expect(sparkline([null, 4], 10, 10)).toBe("10.0,0.0");
    expect(sparkline([], 10, 10)).toBe("");
  });

  it("shows a log line's own fields beside its message", () => {
    const line = { timestamp: "2026-11-23T20:09:25Z", level: "INFO", message: "model ready", event: "model_loaded", model: "magika", version: 1, target: "gatehouse_server::models" };
    expect(logDetails(line)).toBe("model=magika version=1");
    expect(logDetails({ message: "x", tls: false, also: "[::1]:9001" })).toBe("tls=false also=[::1]:9001");
    expect(logDetails(null)).toBe("");
    expect(logDetails("not json")).toBe("");
  });

  it("shows the curl line with the key placeholder", () => {
    expect(curlLine("http://127.0.0.1:9001")).toContain('Bearer $GATEHOUSE_KEY" http://127.0.0.1:9001/v2/models/magika');
    expect(curlLine("https://127.0.0.1:9001", "$K", "/c/ca.pem")).toBe('curl --cacert /c/ca.pem -H "Authorization: Bearer $K" https://127.0.0.1:9001/v2/models/magika');
    expect(curlLine("http://127.0.0.1:9001", "$K", "/c/ca.pem")).not.toContain("cacert");
    expect(curlLine("http://127.0.0.1:9001", "$K", null, "/api/tags")).toMatch(/9001\/api\/tags$/);
  });

  it("notices a checklist change but not a re-run that found the same", () => {
    const item = (status: Item["status"], summary: string): Item => ({ id: "auth.required", title: "t", why: "w", standards: [], status, summary, evidence: [] });
    const report = (items: Item[], duration_ms: number): Report => ({ target: "http://x", kind: "gatehouse", started: "", duration_ms, summary: { pass: 1, warn: 0, fail: 0, unknown: 0 }, items });
    const first = report([item("pass", "ok")], 3);
    expect(reportChanged(first, report([item("pass", "ok")], 5))).toBe(false);
    expect(reportChanged(first, report([item("fail", "ok")], 3))).toBe(true);
    expect(reportChanged(first, report([item("pass", "now different")], 3))).toBe(true);
  });

  it("judges a key active, expired or revoked", () => {
    const key = (fields: Partial<KeyRecord>): KeyRecord => ({ id: "k", name: "n", scopes: ["infer"], created: "2026-01-01T00:00:00Z", hash: "", storage: "keychain", ...fields });
    const now = Date.parse("2026-06-01T00:00:00Z");
    expect(keyState(key({}), now)).toBe("active");
    expect(keyState(key({ expires: "2026-07-01T00:00:00Z" }), now)).toBe("active");
    expect(keyState(key({ expires: "2026-05-01T00:00:00Z" }), now)).toBe("expired");
    expect(keyState(key({ revoked: "2026-05-01T00:00:00Z", expires: "2026-07-01T00:00:00Z" }), now)).toBe("revoked");
  });
});
