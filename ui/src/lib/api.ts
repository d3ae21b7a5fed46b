// The only file that talks to the backend. Pages get a `Backend`; component tests pass a fake.
import { invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";
import { writeText } from "@tauri-apps/plugin-clipboard-manager";
import type {
  AuditView,
  CertInfo,
  CertRow,
  CreatedKey,
  Detected,
  PresetChoice,
  ExportedCa,
  FixOutcome,
  Initialised,
  IssuedClient,
  KeyRecord,
  LogLine,
  ModelRow,
  NetworkChoices,
  Notification,
  Report,
  Sample,
  SecurityEvent,
  ServerInfo,
  SettingChange,
  Settings,
  Status,
  TryResult,
  WizardProgress,
} from "./types";

export interface Backend {
  status(): Promise<Status>;
  start(): Promise<void>;
  stop(): Promise<void>;
  restart(): Promise<void>;
  checklist(): Promise<Report | null>;
  runChecklist(): Promise<Report | null>;
  applyFix(id: string): Promise<FixOutcome>;
  logs(): Promise<LogLine[]>;
  samples(): Promise<Sample[]>;
  securityEvents(): Promise<SecurityEvent[]>;
  notifications(): Promise<Notification[]>;
  auditView(): Promise<AuditView>;
  keys(): Promise<KeyRecord[]>;
  createKey(name: string, scopes: string[], models: string[], expires: string): Promise<CreatedKey>;
  revealKey(id: string): Promise<string>;
  rotateKey(id: string, expires: string): Promise<CreatedKey>;
  revokeKey(id: string): Promise<void>;
  certificates(): Promise<CertRow[]>;
  initCertificates(hosts: string[], days: number): Promise<Initialised>;
  renewServerCertificate(days: number): Promise<CertInfo>;
  issueClient(name: string, days: number): Promise<IssuedClient>;
  importCertificate(cert: string, key: string, ca: string | null): Promise<CertInfo>;
  exportCa(): Promise<ExportedCa>;
  settings(): Promise<Settings>;
  changeSettings(changes: SettingChange[]): Promise<Settings>;
  networkChoices(): Promise<NetworkChoices>;
  wizard(): Promise<WizardProgress>;
  saveWizard(progress: WizardProgress): Promise<void>;
  autostart(): Promise<boolean>;
  setAutostart(on: boolean): Promise<void>;
  serverInfo(): Promise<ServerInfo>;
  detectServers(): Promise<Detected[]>;
  guardPresets(): Promise<PresetChoice[]>;
  exposeFor(window: string): Promise<Settings>;
  exposeStop(): Promise<Settings>;
  models(keyId: string): Promise<ModelRow[]>;
  tryModel(keyId: string, head: number[], tail: number[]): Promise<TryResult>;
  copy(text: string): Promise<void>;
  on(events: Partial<Handlers>): Promise<() => void>;
}

export interface Handlers {
  state: (status: Status) => void;
  checklist: (report: Report) => void;
  sample: (sample: Sample) => void;
  log: (line: LogLine) => void;
  securityEvent: (event: SecurityEvent) => void;
}

/** The text of an error thrown by a command, whatever its shape: what went wrong, then the fix. */
export function errorText(error: unknown): string {
  if (typeof error === "string") return error;
  if (error && typeof error === "object" && "message" in error) {
    const { message, fix } = error as { message: unknown; fix?: unknown };
    return typeof fix === "string" && fix ? `${String(message)}. Fix: ${fix}` : String(message);
  }
  return "The request failed without saying why.";
}

export const tauriBackend: Backend = {
  status: () => invoke("status"),
  start: () => invoke("start"),
  stop: () => invoke("stop"),
  restart: () => invoke("restart"),
  checklist: () => invoke("checklist"),
  runChecklist: () => invoke("run_checklist"),
  applyFix: (id) => invoke("apply_fix", { id }),
  logs: () => invoke("logs"),
  samples: () => invoke("samples"),
  securityEvents: () => invoke("security_events"),
  notifications: () => invoke("notifications"),
  auditView: () => invoke("audit_view"),
  keys: () => invoke("keys_list"),
  createKey: (name, scopes, models, expires) => invoke("key_create", { name, scopes, models, expires }),
  revealKey: (id) => invoke("key_reveal", { id }),
  rotateKey: (id, expires) => invoke("key_rotate", { id, expires }),
  revokeKey: (id) => invoke("key_revoke", { id }),
  certificates: () => invoke("certs_list"),
  initCertificates: (hosts, days) => invoke("certs_init", { hosts, days }),
  renewServerCertificate: (days) => invoke("certs_renew_server", { days }),
  issueClient: (name, days) => invoke("certs_issue_client", { name, days }),
  importCertificate: (cert, key, ca) => invoke("certs_import", { cert, key, ca }),
  exportCa: () => invoke("certs_export_ca"),
  settings: () => invoke("settings_get"),
  changeSettings: (changes) => invoke("settings_change", { changes }),
  networkChoices: () => invoke("network_choices"),
  wizard: () => invoke("wizard_get"),
  saveWizard: (progress) => invoke("wizard_set", { progress }),
  autostart: () => invoke("autostart_get"),
  setAutostart: (on) => invoke("autostart_set", { on }),
  serverInfo: () => invoke("server_info"),
  detectServers: () => invoke("servers_detect"),
  guardPresets: () => invoke("guard_presets"),
  exposeFor: (window) => invoke("expose_start", { window }),
  exposeStop: () => invoke("expose_stop"),
  models: (keyId) => invoke("models_index", { keyId }),
  tryModel: (keyId, head, tail) => invoke("model_try", { keyId, head, tail }),
  copy: (text) => writeText(text),
  async on(handlers) {
    const names: Record<keyof Handlers, string> = {
      state: "app://state",
      checklist: "app://checklist",
      sample: "app://sample",
      log: "app://log",
      securityEvent: "app://security-event",
    };
    const stops = await Promise.all(
      (Object.keys(handlers) as (keyof Handlers)[]).map((key) =>
        listen(names[key], (event) => (handlers[key] as (payload: unknown) => void)(event.payload)),
      ),
    );
    return () => stops.forEach((stop) => stop());
  },
};
