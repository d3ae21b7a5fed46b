// The logic behind the wizard and the settings pages, kept out of the components so it can be
// tested on its own.
import type { CertInfo, SettingChange, Settings, WizardStep as SavedStep } from "./types";

export const wizardSteps = [
  { id: "server", label: "Server" },
  { id: "network", label: "Network" },
  { id: "key", label: "API key" },
  { id: "tls", label: "TLS" },
  { id: "python", label: "Custom Python" },
  { id: "review", label: "Review" },
] as const satisfies readonly { id: SavedStep; label: string }[];
export type WizardStep = (typeof wizardSteps)[number]["id"];

/** Where a wizard resumes: the saved step if it is one, else the first. */
export function resumeAt(saved: string): WizardStep {
  return wizardSteps.find((s) => s.id === saved)?.id ?? "server";
}

export function stepAfter(step: WizardStep, by: 1 | -1): WizardStep {
  const index = wizardSteps.findIndex((s) => s.id === step);
  return wizardSteps[Math.min(wizardSteps.length - 1, Math.max(0, index + by))].id;
}

/** The scopes of the wizard's first key: what the server being protected is used for. */
export function firstKeyScopes(guard: { upstream?: string | null; launch: string[]; preset: string } | null | undefined): string[] {
  const guarding = !!guard && (!!guard.upstream || guard.launch.length > 0);
  if (!guarding) return ["infer"];
  switch (guard.preset) {
    case "roboflow":
      return ["infer", "workflows"];
    case "prefect":
      return ["workflows"];
    default:
      return ["infer"];
  }
}

/** The server Gatehouse protects: its own, one already running, or one it starts. */
export type ServerPick =
  | { kind: "own" }
  | { kind: "running"; url: string; preset: string }
  | { kind: "launch"; preset?: string; command?: string };

/** The [guard] settings for a pick, or what is wrong with it. */
export function guardChanges(pick: ServerPick): { changes: SettingChange[] } | { problem: string } {
  switch (pick.kind) {
    case "own":
      return { changes: [{ key: "guard.upstream", value: "" }, { key: "guard.launch", value: "" }] };
    case "running":
      return {
        changes: [
          { key: "guard.upstream", value: pick.url },
          { key: "guard.preset", value: pick.preset },
          { key: "guard.launch", value: "" },
        ],
      };
    case "launch": {
      const words = (pick.command ?? "").trim().split(/\s+/).filter((w) => w !== "");
      if (words.length === 0) return { problem: "Give the command that starts the server, such as: ollama serve" };
      if (words.some((w) => w.includes(","))) return { problem: "The command's words cannot contain commas; put such arguments in guard.launch in settings.toml." };
      return {
        changes: [
          { key: "guard.upstream", value: "" },
          { key: "guard.preset", value: pick.preset ?? "generic" },
          { key: "guard.launch", value: words.join(",") },
        ],
      };
    }
  }
}

export type Reach = "loopback" | "all" | "lan" | "custom";

/** Which of the Network page's choices an address is. */
export function reachOf(host: string, lanAddress: string | null): Reach {
  if (host === "127.0.0.1" || host === "::1" || host === "localhost") return "loopback";
  if (host === "0.0.0.0" || host === "::") return "all";
  if (lanAddress !== null && host === lanAddress) return "lan";
  return "custom";
}

export function hostFor(reach: Reach, lanAddress: string | null, custom: string): string {
  switch (reach) {
    case "loopback":
      return "127.0.0.1";
    case "all":
      return "0.0.0.0";
    case "lan":
      return lanAddress ?? "0.0.0.0";
    case "custom":
      return custom.trim();
  }
}

export interface NetworkForm {
  reach: Reach;
  custom: string;
  port: string;
  /** The Open Inference Protocol over gRPC, on its own port; off is a choice. */
  grpc: boolean;
  grpcPort: string;
  origins: string;
}

/**
 * The settings a Network form asks for, or what is wrong with it (checked here so the person
 * sees it before anything is written; the backend checks again).
 */
export function networkChanges(form: NetworkForm, lanAddress: string | null): { changes: SettingChange[] } | { problem: string } {
  const host = hostFor(form.reach, lanAddress, form.custom);
  if (host === "") return { problem: "Give the address to listen on, such as 192.168.1.20." };
  const port = Number(form.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return { problem: `Port ${form.port} is not a port: give a whole number from 1 to 65535.` };
  const grpcPort = Number(form.grpcPort);
  if (form.grpc) {
    if (!Number.isInteger(grpcPort) || grpcPort < 1 || grpcPort > 65535)
      return { problem: `gRPC port ${form.grpcPort} is not a port: give a whole number from 1 to 65535, or turn gRPC off.` };
    if (grpcPort === port) return { problem: `gRPC needs a port of its own, not ${port} as well: 9002 is the usual one.` };
  }
  const origins = form.origins.split(/[\s,]+/).filter((o) => o !== "");
  for (const origin of origins) {
    if (origin === "*") continue;
    if (!/^https?:\/\/[^/\s]+$/.test(origin)) return { problem: `"${origin}" is not an origin: write scheme and host only, such as http://localhost:5173.` };
  }
  return {
    changes: [
      { key: "server.host", value: host },
      { key: "server.port", value: String(port) },
      { key: "grpc.enabled", value: String(form.grpc) },
      ...(form.grpc ? [{ key: "grpc.port", value: String(grpcPort) }] : []),
      { key: "cors.allowed_origins", value: origins.join(",") },
    ],
  };
}

/** What a bind choice means, in plain words. */
export function reachConsequence(reach: Reach, settings: Settings | null): string {
  if (reach === "loopback") return "Only programs on this computer can connect. Nothing on your network can reach the server, key or no key.";
  const tls = settings?.tls.enabled
    ? "Traffic is encrypted with TLS."
    : "TLS is off, so keys and data would cross the network readable by anyone on it: turn TLS on (the checklist flags this).";
  return `Other devices on your network can connect; each request still needs an API key. ${tls}`;
}

export type Tone = "good" | "warn" | "bad";

/** How soon a certificate needs attention. */
export function expiryTone(cert: CertInfo): Tone {
  if (cert.days_left < 0) return "bad";
  if (cert.days_left < 30) return "warn";
  return "good";
}

/** The common name of a subject such as `CN=laptop, O=Gatehouse`. */
export function commonName(subject: string): string {
  return /(?:^|,\s*)CN=([^,]+)/.exec(subject)?.[1] ?? subject;
}

/** The first and last 4 KiB of a file: all the content-type model reads. */
export function fileEnds(bytes: Uint8Array): { head: number[]; tail: number[] } {
  const block = 4096;
  return { head: Array.from(bytes.subarray(0, block)), tail: Array.from(bytes.subarray(Math.max(0, bytes.length - block))) };
}
