import { describe, expect, it } from "vitest";
import { commonName, expiryTone, fileEnds, firstKeyScopes, guardChanges, networkChanges, reachOf, resumeAt, stepAfter } from "./setup";
import type { CertInfo } from "./types";

describe("wizard", () => {
  it("gives the first key the scopes the protected server is used with", () => {
    expect(firstKeyScopes(null)).toEqual(["infer"]);
    expect(firstKeyScopes({ upstream: null, launch: [], preset: "roboflow" })).toEqual(["infer"]);
    expect(firstKeyScopes({ upstream: null, launch: ["{preset}"], preset: "roboflow" })).toEqual(["infer", "workflows"]);
    expect(firstKeyScopes({ upstream: "http://127.0.0.1:4200", launch: [], preset: "prefect" })).toEqual(["workflows"]);
    expect(firstKeyScopes({ upstream: "http://127.0.0.1:11434", launch: [], preset: "ollama" })).toEqual(["infer"]);
  });

  it("resumes where it was left and walks both ways within its steps", () => {
    expect(resumeAt("tls")).toBe("tls");
    expect(resumeAt("")).toBe("server");
    expect(resumeAt("gone")).toBe("server");
    expect(stepAfter("server", 1)).toBe("network");
    expect(stepAfter("network", 1)).toBe("key");
    expect(stepAfter("network", -1)).toBe("server");
    expect(stepAfter("server", -1)).toBe("server");
    expect(stepAfter("review", 1)).toBe("review");
    expect(stepAfter("python", -1)).toBe("tls");
  });
});

describe("server choice", () => {
  it("writes the guard settings for each kind of server", () => {
    expect(guardChanges({ kind: "own" })).toEqual({
      changes: [
        { key: "guard.upstream", value: "" },
        { key: "guard.launch", value: "" },
      ],
    });
    expect(guardChanges({ kind: "running", url: "http://127.0.0.1:11434", preset: "ollama" })).toEqual({
      changes: [
        { key: "guard.upstream", value: "http://127.0.0.1:11434" },
        { key: "guard.preset", value: "ollama" },
        { key: "guard.launch", value: "" },
      ],
    });
    expect(guardChanges({ kind: "launch", preset: "openai", command: "  llama-server  -m m.gguf --port {port} " })).toEqual({
      changes: [
        { key: "guard.upstream", value: "" },
        { key: "guard.preset", value: "openai" },
        { key: "guard.launch", value: "llama-server,-m,m.gguf,--port,{port}" },
      ],
    });
  });

  it("refuses a launch without a command or with a comma in it", () => {
    expect(guardChanges({ kind: "launch", preset: "ollama", command: "  " })).toHaveProperty("problem", expect.stringContaining("ollama serve"));
    expect(guardChanges({ kind: "launch", preset: "generic", command: "srv --a=1,2" })).toHaveProperty("problem", expect.stringContaining("commas"));
  });
});

describe("network form", () => {
  const form = { reach: "loopback" as const, custom: "", port: "9001", grpc: true, grpcPort: "9002", origins: "" };

  it("recognises each bind choice", () => {
    expect(reachOf("127.0.0.1", "192.168.1.5")).toBe("loopback");
    expect(reachOf("0.0.0.0", null)).toBe("all");
    expect(reachOf("192.168.1.5", "192.168.1.5")).toBe("lan");
    expect(reachOf("10.0.0.9", "192.168.1.5")).toBe("custom");
  });

  it("turns a valid form into settings changes", () => {
    const result = networkChanges({ ...form, reach: "lan", origins: "http://localhost:5173, https://app.example" }, "192.168.1.5");
    expect(result).toEqual({
      changes: [
        { key: "server.host", value: "192.168.1.5" },
        { key: "server.port", value: "9001" },
        { key: "grpc.enabled", value: "true" },
        { key: "grpc.port", value: "9002" },
        { key: "cors.allowed_origins", value: "http://localhost:5173,https://app.example" },
      ],
    });
  });

  it("turns gRPC off or refuses it the HTTP port", () => {
    const off = networkChanges({ ...form, grpc: false, grpcPort: "" }, null);
    expect(off).toHaveProperty("changes", expect.arrayContaining([{ key: "grpc.enabled", value: "false" }]));
    expect(JSON.stringify(off)).not.toContain("grpc.port");
    expect(networkChanges({ ...form, grpcPort: "9001" }, null)).toHaveProperty("problem", expect.stringContaining("port of its own"));
    expect(networkChanges({ ...form, grpcPort: "x" }, null)).toHaveProperty("problem", expect.stringContaining("gRPC port x"));
  });

  it("says what is wrong with a bad port, origin or empty address", () => {
    expect(networkChanges({ ...form, port: "70000" }, null)).toHaveProperty("problem", expect.stringContaining("65535"));
    expect(networkChanges({ ...form, origins: "localhost:5173/app" }, null)).toHaveProperty("problem", expect.stringContaining("not an origin"));
    expect(networkChanges({ ...form, reach: "custom", custom: " " }, null)).toHaveProperty("problem", expect.stringContaining("address"));
  });
});

describe("certificates and files", () => {
  const cert = (days_left: number): CertInfo => ({ role: "server", path: "/x", subject: "", names: [], not_before: "", not_after: "", days_left });

  it("flags certificates close to or past expiry", () => {
    expect(expiryTone(cert(80))).toBe("good");
    expect(expiryTone(cert(10))).toBe("warn");
    expect(expiryTone(cert(-1))).toBe("bad");
  });

  it("names a certificate by its common name", () => {
    expect(commonName("CN=ci-client, O=Gatehouse")).toBe("ci-client");
    expect(commonName("O=Gatehouse, CN=Gatehouse local CA (vm)")).toBe("Gatehouse local CA (vm)");
    expect(commonName("O=Elsewhere")).toBe("O=Elsewhere");
  });

  it("sends only the ends of a big file", () => {
    const bytes = new Uint8Array(10000).map((_, i) => i % 256);
    const { head, tail } = fileEnds(bytes);
    expect(head.length).toBe(4096);
    expect(tail.length).toBe(4096);
    expect(tail[4095]).toBe(9999 % 256);
    expect(fileEnds(new Uint8Array([1, 2]))).toEqual({ head: [1, 2], tail: [1, 2] });
  });
});
