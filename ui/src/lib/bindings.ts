// Generated from the Rust types by src-tauri/src/bindings.rs; do not edit by hand.

export type State = "stopped" | "starting" | "ready" | "degraded" | "crashed" | "crash-looping";

export type Status = { state: State, since: string, 
/**
 * Why it is in this state, for people (crash and failure reasons quote the child's log).
 */
reason: string | null, 
/**
 * The server's URL once it announced it.
 */
url: string | null, 
/**
 * Its gRPC port's address, when it has one open.
 */
grpc_address: string | null, pid: number | null, 
/**
 * Restarts after crashes since the last deliberate start.
 */
restarts: number, 
/**
 * When crashed and restarting: in how many milliseconds.
 */
next_restart_ms: number | null, };

export type LogLine = { at: string, 
/**
 * `stdout` (JSON log) or `stderr` (start errors).
 */
stream: string, 
/**
 * `INFO`, `WARN`, `ERROR`…; stderr lines are `ERROR`.
 */
level: string, message: string, 
/**
 * The whole line, parsed, when it was JSON.
 */
fields: unknown, };

export type Sample = { at: string, cpu_percent: number, memory_bytes: number, requests_per_second: number, errors_per_second: number, auth_failures_per_second: number, p50_ms: number | null, p99_ms: number | null, };

export type CheckStatus = "pass" | "unknown" | "warn" | "fail";

export type Evidence = { 
/**
 * What was done, e.g. `GET /v2 without a key`.
 */
probe: string, 
/**
 * What came back, e.g. `401 unauthorized`.
 */
observed: string, at: string, };

export type Fix = { "action": "set_setting", key: string, value: string, } | { "action": "create_key", name: string, scopes: Array<Scope>, expires: string, } | { "action": "enable_tls" } | { "action": "renew_certificates" } | { "action": "restrict_file_modes", paths: Array<string>, };

export type ItemId = "server.reachable" | "network.exposure" | "network.host_check" | "guard.upstream_loopback" | "guard.admin_routes" | "guard.custom_python" | "guard.key_stripped" | "guard.guide" | "auth.required" | "grpc.perimeter" | "public.no_secrets" | "transport.tls" | "transport.certificate" | "transport.versions" | "transport.plaintext" | "transport.mtls" | "workflows.custom_python" | "workflows.sandbox" | "auth.key_in_url" | "cors.policy" | "metrics.protected" | "keys.exist" | "keys.expiry" | "keys.age" | "keys.separation" | "keys.storage" | "files.permissions" | "audit.enabled";

export type Item = { id: ItemId, title: string, 
/**
 * Why it matters, in plain words.
 */
why: string, 
/**
 * The standards it maps to (OWASP API Security Top 10 2023, NIST SP 800-207, NIST CSF).
 */
standards: Array<string>, status: CheckStatus, 
/**
 * One line saying what was found.
 */
summary: string, evidence: Array<Evidence>, 
/**
 * What would put it right, as data the app applies in one click.
 */
fix?: Fix, };

export type ReportKind = "gatehouse" | "external";

export type Summary = { pass: number, warn: number, fail: number, unknown: number, };

export type Report = { 
/**
 * The URL that was probed.
 */
target: string, kind: ReportKind, started: string, duration_ms: number, summary: Summary, items: Array<Item>, };

export type Scope = "infer" | "workflows" | "metrics" | "admin";

export type Storage = "keychain" | "hash-only";

export type KeyRecord = { id: string, name: string, scopes: Array<Scope>, created: string, expires?: string, revoked?: string, last_used?: string, 
/**
 * The id of the key that replaced this one, when it was rotated.
 */
rotated_to?: string | null, 
/**
 * `sha256:<hex>` of the whole key.
 */
hash: string, storage: Storage, 
/**
 * The only models this key may run (inference and workflow model steps); empty: any.
 */
models?: Array<string>, };

export type CertRole = "ca" | "server" | "client" | "imported-ca";

export type CertInfo = { role: CertRole, path: string, subject: string, names: Array<string>, not_before: string, not_after: string, days_left: number, };

export type Initialised = { ca: CertInfo, server: CertInfo, 
/**
 * The CA is new (clients must trust this `ca.pem`), rather than the one already there.
 */
ca_created: boolean, server_key: string, };

export type Settings = { server: ServerSettings, 
/**
 * The Open Inference Protocol over gRPC, beside the HTTP port and behind the same perimeter.
 */
grpc: GrpcSettings, tls: TlsSettings, cors: CorsSettings, auth: AuthSettings, inference: InferenceSettings, limits: LimitSettings, audit: AuditSettings, log: LogSettings, workflows: WorkflowSettings, 
/**
 * Guard mode: the server Gatehouse stands in front of, when it is not its own.
 */
guard: GuardSettings, };

export type ServerSettings = { 
/**
 * Address to listen on. Loopback by default: only this computer can connect.
 */
host: string, 
/**
 * TCP port; 0 asks the OS for a free one.
 */
port: number, 
/**
 * The model repository (`<name>/<version>/model.onnx`); empty means the one setup installs.
 */
models: string | null, 
/**
 * Who may read `/metrics`.
 */
metrics_access: MetricsAccess, 
/**
 * Further names clients may address the server by (the `Host` they send), beyond
 * `localhost`, the host name, its addresses and the names in its certificate. Requests to
 * any other name get 421: the defence against DNS rebinding.
 */
allowed_hosts: Array<string>, 
/**
 * When set (RFC 3339), the address above holds until then and loopback after: a
 * time-limited exposure (`gatehouse expose --for 1h`). Unset, the address is deliberate.
 */
exposed_until: string | null, };

export type MetricsAccess = "auto" | "public" | "key";

export type GrpcSettings = { 
/**
 * Serve gRPC at all.
 */
enabled: boolean, 
/**
 * TCP port; 0 asks the OS for a free one. The HTTP port's neighbour, as Triton's 8000 and
 * 8001 are.
 */
port: number, };

export type TlsSettings = { 
/**
 * Speak HTTPS (TLS 1.2 and 1.3 only).
 */
enabled: boolean, 
/**
 * The server's certificate chain (PEM); empty means the one `gatehouse certs init` made.
 */
cert: string | null, 
/**
 * The server's private key (PEM); empty means the one `gatehouse certs init` made.
 */
key: string | null, 
/**
 * CA certificates (PEM) that client certificates must chain to; set, it turns on mutual TLS:
 * a client without a valid certificate is refused during the handshake.
 */
client_ca: string | null, 
/**
 * Listen beyond this computer without TLS anyway. Off, such a start is refused: keys and
 * data would cross the network in plain text.
 */
allow_plaintext_network: boolean, };

export type CorsSettings = { 
/**
 * Origins such as `http://localhost:5173`; `*` alone allows any page, never with credentials.
 */
allowed_origins: Array<string>, allowed_methods: Array<string>, allowed_headers: Array<string>, };

export type AuthSettings = { 
/**
 * Every non-public endpoint needs an API key. Turning this off shows red on the checklist.
 */
enabled: boolean, 
/**
 * Allow listening beyond this computer with authentication off. Refused otherwise: anyone on
 * the network could then use the server.
 */
allow_open_network: boolean, };

export type InferenceSettings = { 
/**
 * Threads ONNX Runtime may use inside one inference.
 */
intra_threads: number, 
/**
 * Sessions per model version at most, i.e. how many requests to one model run at the same
 * time; 0 means one per CPU core. One is made at load and the others when that many requests
 * first arrive together, so an idle server holds a single copy of each model.
 */
sessions_per_model: number, 
/**
 * The ONNX Runtime library; empty means the one setup installs.
 */
onnxruntime: string | null, 
/**
 * Open a `model.onnx` that is a symbolic link, or lies outside the model repository through
 * one. Off: a link placed in the repository cannot make the server open any file it names.
 */
allow_model_symlinks: boolean, };

export type LimitSettings = { 
/**
 * Largest request body accepted, in bytes; larger ones get 413.
 */
max_body_bytes: number, 
/**
 * Sustained requests per second one API key may make (bursts of twice this pass).
 */
key_requests_per_second: number, 
/**
 * Sustained requests per second from one client address.
 */
address_requests_per_second: number, 
/**
 * Failed authentications from one address within a minute before each further one is slowed.
 */
auth_failures_before_slowdown: number, 
/**
 * Failed authentications from one address within a minute before it is refused outright.
 */
auth_failures_before_lockout: number, 
/**
 * How long a locked-out address is refused.
 */
auth_lockout_seconds: number, 
/**
 * Requests handled at once; more get 503 with `Retry-After`.
 */
max_concurrent_requests: number, 
/**
 * A request that takes longer gets 504.
 */
request_timeout_seconds: number, 
/**
 * Longest request target (path and query) accepted; longer gets 414.
 */
max_uri_bytes: number, 
/**
 * Largest total size of request headers accepted; larger gets 431.
 */
max_header_bytes: number, 
/**
 * Connections open at once; past it a new one is closed at once (counted in `/metrics`).
 */
max_connections: number, 
/**
 * TLS handshakes in progress at once; past it a new connection is closed at once.
 */
max_tls_handshakes: number, 
/**
 * Seconds a connection has, from being ready for a request, to send that request's
 * headers; bounds slow senders and idle keep-alive connections alike.
 */
header_read_timeout_seconds: number, 
/**
 * Megabytes one workflow's step results may hold at once; past it the request gets 413.
 */
workflow_memory_mb: number, };

export type AuditSettings = { 
/**
 * One JSON line per authenticated or refused request and per key change.
 */
enabled: boolean, };

export type LogSettings = { 
/**
 * A tracing filter such as `info` or `gatehouse_server=debug,info`.
 */
level: string, };

export type WorkflowSettings = { 
/**
 * Let workflows run `python` steps. Off: anyone who can submit a workflow could otherwise run
 * code on this computer, so it stays off unless someone turns it on deliberately.
 */
allow_custom_python: boolean, 
/**
 * The interpreter python steps run in (the system's; a virtualenv under your home directory
 * would be hidden by the sandbox).
 */
python: string, 
/**
 * Wall-clock limit of one python step.
 */
python_timeout_seconds: number, 
/**
 * CPU-time limit of one python step.
 */
python_cpu_seconds: number, 
/**
 * Address-space limit of one python step.
 */
python_memory_mb: number, 
/**
 * Largest JSON a python step may return.
 */
python_output_bytes: number, 
/**
 * Run python steps even when a layer of the sandbox (namespaces, Landlock, seccomp) cannot
 * be had on this kernel. Off: such steps are refused with the missing layer named.
 */
allow_weaker_sandbox: boolean, };

export type GuardSettings = { 
/**
 * The server Gatehouse guards, e.g. `http://127.0.0.1:11434`; it must listen on loopback
 * only. Unset: Gatehouse serves its own ONNX models instead.
 */
upstream: string | null, 
/**
 * Which route table applies: ollama, openai, oip, tfserving, roboflow, prefect or generic.
 */
preset: string, 
/**
 * The command that starts the upstream, when Gatehouse launches it; `{port}` becomes the
 * loopback port Gatehouse picked for it. `["{preset}"]`: the preset's own command (for
 * Roboflow Inference, its HTTP app under the Python its `inference` command runs with).
 */
launch: Array<string>, 
/**
 * Environment for the launched upstream, after the preset's (`{port}` as above).
 */
launch_env: { [key in string]: string }, 
/**
 * Route rules ahead of the preset's: a path pattern (`*` one segment, `**` the rest) →
 * `public` or a scope. The longest pattern is tried first.
 */
route_scopes: { [key in string]: string }, };

export type Detected = { port: number, 
/**
 * The URL to guard it at (`http://127.0.0.1:PORT`).
 */
url: string, 
/**
 * What it looks like, in words: "Ollama", "an OpenAI-compatible server", …
 */
looks_like: string, 
/**
 * The preset that fits; none for a Gatehouse server, which needs no guard.
 */
preset: string | null, 
/**
 * Requests it answered without any credential, e.g. `GET /api/tags`.
 */
open: Array<string>, 
/**
 * Addresses beyond loopback it listens on: reachable around any guard until rebound.
 */
beyond_loopback: Array<string>, };

export type PresetChoice = { name: string, 
/**
 * The servers it fits, in words.
 */
servers: string, 
/**
 * One line on what it is and why it needs guarding.
 */
description: string, 
/**
 * Where its program was found on PATH.
 */
installed: string | null, 
/**
 * The one command that installs it, when it was not found.
 */
install: string | null, 
/**
 * What to put in the launch command: `{preset}` when Gatehouse knows how to start it.
 */
launch: string, 
/**
 * What `{preset}` runs, in words, when it is offered.
 */
launches: string | null, };

export type ServerInfo = { name: string, version: string, onnxruntime: string, 
/**
 * The address the server listens on.
 */
address: string, 
/**
 * True when only this computer can connect.
 */
loopback_only: boolean, tls: boolean, mtls: boolean, 
/**
 * Whether protected endpoints need an API key. Told to clients on this computer only, like
 * the fields below: beyond it they would tell an attacker where to start.
 */
auth?: boolean, 
/**
 * Whether workflows may run `python` steps.
 */
custom_python?: boolean, 
/**
 * With custom Python on: the sandbox layers in force and the ones this system lacks.
 */
python_sandbox?: PythonSandbox, 
/**
 * Valid keys sent in a URL (`?api_key=`) in the last 24 hours, most recent first.
 */
keys_in_url?: Array<KeyInUrl>, models_ready: number, 
/**
 * Where the Open Inference Protocol's gRPC service listens, when it is on.
 */
grpc_address?: string, 
/**
 * In guard mode: what Gatehouse stands in front of.
 */
guarding?: Guarding, };

export type Guarding = { 
/**
 * The route table in force (`ollama`, `openai`, `oip`, `tfserving`, `generic`).
 */
preset: string, 
/**
 * Its loopback address; told to clients on this computer only.
 */
upstream?: string, 
/**
 * starting, ready, restarting, crash-looping, failed, or external (not launched by Gatehouse).
 */
state: string, 
/**
 * Whether Gatehouse launched it and restarts it.
 */
launched: boolean, 
/**
 * What the launched server's own output showed of the requests it received; told to
 * clients on this computer only.
 */
output?: UpstreamOutput, };

export type UpstreamOutput = { 
/**
 * Lines of its output that held something shaped like a Gatehouse key (before Gatehouse's
 * log redacted it).
 */
keys_seen: number, 
/**
 * The checklist's canary requests the server logged, most recent last.
 */
canaries: Array<CanarySeen>, };

export type CanarySeen = { nonce: string, 
/**
 * The line that logged it also held a Gatehouse key.
 */
key_seen: boolean, };

export type PythonSandbox = { layers: Array<string>, missing: Array<string>, 
/**
 * Python steps run although a layer is missing (`workflows.allow_weaker_sandbox`).
 */
weaker_accepted: boolean, };

export type KeyInUrl = { key_id: string, address: string, last_seen: string, count: number, };

export type CommandError = { code: string, message: string, fix: string | null, };

export type FixOutcome = { message: string, 
/**
 * A key the fix created, shown once.
 */
key: string | null, };

export type CreatedKey = { id: string, key: string, 
/**
 * For a rotation: until when the replaced key keeps working.
 */
replaces_until: string | null, 
/**
 * For a key that ends within a day (a demo key): the card to hand it over with.
 */
share: Share | null, };

export type Share = { url: string, ca: string | null, expires: string | null, models: Array<string>, text: string, 
/**
 * The text as a QR code (SVG markup).
 */
qr_svg: string, };

export type CertRow = { info: CertInfo | null, error: string | null, 
/**
 * A server certificate from another CA (imported): its issuer renews it, not Gatehouse.
 */
imported: boolean, };

export type IssuedClient = { certificate: CertInfo, key: string, ca: string, };

export type ExportedCa = { path: string, pem: string, };

export type SettingChange = { key: string, value: string, };

export type NetworkChoices = { 
/**
 * This computer's address on the network it routes through, if it has one.
 */
lan_address: string | null, host_name: string | null, };

export type WizardStep = "server" | "network" | "key" | "tls" | "python" | "review";

export type WizardProgress = { 
/**
 * The step to show next.
 */
step: WizardStep, completed: boolean, };

export type ModelState = "READY" | "UNAVAILABLE";

export type IndexEntry = { name: string, version: string, state: ModelState, 
/**
 * Why the version cannot be served; empty when ready.
 */
reason: string, };

export type Guess = { label: string, 
/**
 * Softmax probability, 0 to 1.
 */
score: number, };

export type TryResult = { guesses: Array<Guess>, elapsed_ms: number, 
/**
 * The request body, saved so the `curl` line can send it again.
 */
request_file: string, curl: string, };

export type Severity = "info" | "warning" | "critical";

export type Event = { 
/**
 * RFC 3339, from the audit line that gave rise to it.
 */
time: string, severity: Severity, 
/**
 * `auth_burst`, `lockout`, `new_address`, `two_addresses`, `revoked_key_used`,
 * `expired_key_used`, `exposure_opened`, `exposure_closed`, `custom_python_on`,
 * `certificate_expiring`, `upstream_exposed`.
 */
kind: string, 
/**
 * What happened, in words.
 */
summary: string, 
/**
 * The facts it rests on: addresses, key ids, counts, audit `seq` numbers.
 */
evidence: Record<string, unknown>, };

export type Notification = { title: string, body: string, 
/**
 * The desktop took it (a notification service answered); false where none runs.
 */
delivered: boolean, };

export type Tamper = "changed" | "removed" | "inserted" | "damaged";

export type Finding = { tamper: Tamper, file: string, 
/**
 * 1-based line number in that file.
 */
line: number, detail: string, };

export type Verdict = { whole: boolean, files: Array<string>, lines: number, 
/**
 * Lines written before the chain existed, at the start.
 */
unchained: number, first_seq: number | null, last_seq: number | null, head: string, findings: Array<Finding>, };

export type AuditView = { 
/**
 * The newest lines, oldest first, as written (JSON objects).
 */
lines: Array<Record<string, unknown>>, verdict: Verdict, };
