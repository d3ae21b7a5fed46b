import { describe, expect, it } from "vitest";
import { ago, bytes, curlLine, millis, rate, sparkline, stateTone } from "./format";

describe("format", () => {
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

  it("shows the curl line with the key placeholder", () => {
    expect(curlLine("http://127.0.0.1:9001")).toContain('Bearer $GATEHOUSE_KEY" http://127.0.0.1:9001/v2/models/magika');
    expect(curlLine("https://127.0.0.1:9001", "$K", "/c/ca.pem")).toBe('curl --cacert /c/ca.pem -H "Authorization: Bearer $K" https://127.0.0.1:9001/v2/models/magika');
    expect(curlLine("http://127.0.0.1:9001", "$K", "/c/ca.pem")).not.toContain("cacert");
  });
});
