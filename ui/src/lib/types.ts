// The shapes the backend sends, as gatehouse-core serialises them (see crates/core: supervisor.rs,
// checklist.rs, keys.rs).

export type ServerState = "stopped" | "starting" | "ready" | "degraded" | "crashed" | "crash-looping";

export interface Status {
  state: ServerState;
  since: string;
  reason: string | null;
  url: string | null;
  pid: number | null;
  restarts: number;
  next_restart_ms: number | null;
}

export type CheckStatus = "pass" | "warn" | "fail" | "unknown";

export interface Evidence {
  probe: string;
  observed: string;
  at: string;
}

export interface Fix {
  action: string;
  [field: string]: unknown;
}

export interface Item {
  id: string;
  title: string;
  why: string;
  standards: string[];
  status: CheckStatus;
  summary: string;
  evidence: Evidence[];
  fix?: Fix;
}

export interface Report {
  target: string;
  kind: string;
  started: string;
  duration_ms: number;
  summary: { pass: number; warn: number; fail: number; unknown: number };
  items: Item[];
}

export interface Sample {
  at: string;
  cpu_percent: number;
  memory_bytes: number;
  requests_per_second: number;
  errors_per_second: number;
  auth_failures_per_second: number;
  p50_ms: number | null;
  p99_ms: number | null;
}

export interface LogLine {
  at: string;
  stream: string;
  level: string;
  message: string;
}

export interface KeyRecord {
  id: string;
  name: string;
  scopes: string[];
  created: string;
  expires?: string;
  revoked?: string;
  last_used?: string;
  storage: "keychain" | "hash-only";
}

export interface FixOutcome {
  message: string;
  key: string | null;
}

export interface CreatedKey {
  id: string;
  key: string;
}

/** Every error from the backend: what went wrong and how to fix it, in one sentence. */
export interface CommandError {
  message: string;
}
