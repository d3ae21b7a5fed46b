// Words and numbers for people: what each state means, sizes, rates, durations.
import type { CheckStatus, KeyRecord, Report, ServerState } from "./types";

export const stateLabel: Record<ServerState, string> = {
  stopped: "Stopped",
  starting: "Starting",
  ready: "Ready",
  degraded: "Ready, with failing checks",
  crashed: "Crashed",
  "crash-looping": "Crashed repeatedly",
};

/** A tone for colour and an icon, so colour is never the only signal. */
export function stateTone(state: ServerState): "good" | "busy" | "warn" | "bad" | "idle" {
  switch (state) {
    case "ready":
      return "good";
    case "starting":
      return "busy";
    case "degraded":
      return "warn";
    case "crashed":
    case "crash-looping":
      return "bad";
    default:
      return "idle";
  }
}

export const checkIcon: Record<CheckStatus, string> = { pass: "✓", warn: "!", fail: "✕", unknown: "?" };

export function bytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(1)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(0)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(0)} KiB`;
  return `${n} B`;
}

export function rate(n: number): string {
  if (n >= 1000) return `${(n / 1000).toFixed(1)}k/s`;
  if (n >= 10) return `${n.toFixed(0)}/s`;
  return `${n.toFixed(1)}/s`;
}

export function millis(n: number | null): string {
  if (n === null) return "–";
  if (n < 1) return `${(n * 1000).toFixed(0)} µs`;
  return `${n.toFixed(n < 10 ? 1 : 0)} ms`;
}

/** "12 s ago", "3 min ago" from an RFC 3339 time. */
export function ago(iso: string, now: number = Date.now()): string {
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

/** The curl line that tries the server with a key (trusting the local CA when it speaks TLS). */
export function curlLine(url: string, key = "$GATEHOUSE_KEY", cacert: string | null = null, path = "/v2/models/magika"): string {
  const trust = url.startsWith("https:") && cacert ? ` --cacert ${cacert}` : "";
  return `curl${trust} -H "Authorization: Bearer ${key}" ${url}${path}`;
}

/** A read-only route an inference key may call: one of the default models on Gatehouse's own
 * server, or the guarded server's model list. */
export function tryPath(guard: { upstream?: string | null; launch: string[]; preset: string } | null | undefined): string {
  if (!guard || (!guard.upstream && guard.launch.length === 0)) return "/v2/models/magika";
  switch (guard.preset) {
    case "ollama":
      return "/api/tags";
    case "openai":
      return "/v1/models";
    case "oip":
      return "/v2";
    case "tfserving":
      return "/v1/models/MODEL";
    case "roboflow":
      return "/model/registry";
    case "prefect":
      return "/ui-settings";
    default:
      return "/";
  }
}

/** Points for an SVG polyline of `values` in a `width`×`height` box (missing values skipped). */
export function sparkline(values: (number | null)[], width: number, height: number): string {
  const present = values.filter((v): v is number => v !== null && Number.isFinite(v));
  if (present.length === 0) return "";
  const max = Math.max(...present, 1e-9);
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  return values
    .map((v, i) => (v === null || !Number.isFinite(v) ? null : `${(i * step).toFixed(1)},${(height - (v / max) * height).toFixed(1)}`))
    .filter((p) => p !== null)
    .join(" ");
}

/** Whether a checklist report says anything a person would see differently from the last one. */
export function reportChanged(last: Report, next: Report): boolean {
  const seen = (r: Report) => r.items.map((i) => `${i.id}|${i.status}|${i.summary}|${i.fix ? 1 : 0}`).join("\n");
  return last.target !== next.target || seen(last) !== seen(next);
}

/** Where a key stands, as the server would judge it now. */
export function keyState(key: KeyRecord, now: number = Date.now()): "active" | "expired" | "revoked" {
  if (key.revoked) return "revoked";
  if (key.expires && Date.parse(key.expires) <= now) return "expired";
  return "active";
}

/** What a JSON log line says beyond its message, as `key=value` pairs (the model a "model ready"
 * line is about, the address a server listens on); the fields every line has are left out. */
export function logDetails(fields: unknown): string {
  if (!fields || typeof fields !== "object" || Array.isArray(fields)) return "";
  const routine = new Set(["timestamp", "level", "message", "target", "event", "fields"]);
  return Object.entries(fields as Record<string, unknown>)
    .filter(([key, value]) => !routine.has(key) && value !== null && value !== undefined && value !== "")
    .map(([key, value]) => `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`)
    .join(" ");
}

/** How long an exposure has left, in words ("42 min left", "1 h 5 min left"); null once it is over. */
export function timeLeft(until: string | null | undefined, now: number = Date.now()): string | null {
  if (!until) return null;
  const ms = Date.parse(until) - now;
  if (!(ms > 0)) return null;
  const minutes = Math.ceil(ms / 60000);
  if (minutes < 60) return `${minutes} min left`;
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  return rest === 0 ? `${hours} h left` : `${hours} h ${rest} min left`;
}

/** A security event's evidence as one line: `address 10.0.0.9 · key abc · 12 failures · audit #42`. */
export function eventEvidence(evidence: Record<string, unknown>): string {
  const parts: string[] = [];
  const text = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));
  for (const [key, value] of Object.entries(evidence)) {
    if (value === null || value === undefined || value === "") continue;
    if (key === "audit_seq") continue;
    if (key === "key_id") parts.push(`key ${text(value)}`);
    else if (key === "addresses" && Array.isArray(value)) parts.push(`from ${value.join(" and ")}`);
    else if (key === "failures") parts.push(`${text(value)} failures`);
    else if (key === "window_seconds") continue;
    else parts.push(`${key.replace(/_/g, " ")} ${text(value)}`);
  }
  if (evidence.audit_seq !== undefined) parts.push(`audit #${text(evidence.audit_seq)}`);
  return parts.join(" · ");
}

/** The tone a severity is shown in. */
export function severityTone(severity: "info" | "warning" | "critical"): "bad" | "warn" | "idle" {
  return severity === "critical" ? "bad" : severity === "warning" ? "warn" : "idle";
}

/** `events` with `event` added at the end unless it is already there (the page's first read and
 * the live feed can both bring the same one), at most `keep` of the latest. */
export function withEvent<T extends { time: string; kind: string; summary: string }>(events: T[], event: T, keep: number): T[] {
  const same = (e: T) => e.time === event.time && e.kind === event.kind && e.summary === event.summary;
  return events.some(same) ? events : [...events, event].slice(-keep);
}

/** One audit line in words: `GET /v2/models/{model} 401 malformed · key abc · 127.0.0.1`, or the event and its fields. */
export function auditLine(line: Record<string, unknown>): string {
  const text = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));
  if (line.event === "request") {
    const parts = [`${text(line.method)} ${text(line.path ?? line.route)}`, text(line.status)];
    if (line.reason) parts.push(text(line.reason));
    if (line.model) parts.push(`model ${text(line.model)}`);
    return `${parts.join(" ")} · key ${line.key_id ? text(line.key_id) : "none"} · ${text(line.address)}`;
  }
  const skip = new Set(["time", "event", "seq", "prev"]);
  const fields = Object.entries(line)
    .filter(([k, v]) => !skip.has(k) && v !== null && v !== "")
    .map(([k, v]) => `${k}=${text(v)}`);
  return [text(line.event), ...fields].join(" ");
}
