import { describe, expect, it } from "vitest";
import { errorText } from "./api";

describe("errorText", () => {
  it("puts the fix after what went wrong", () => {
    expect(errorText({ code: "no_local_ca", message: "there is no local CA yet", fix: "turn TLS on first" })).toBe("there is no local CA yet. Fix: turn TLS on first");
  });
  it("shows a message alone when there is no fix", () => {
    expect(errorText({ code: "probe_timeout", message: "no answer in 5 s", fix: null })).toBe("no answer in 5 s");
  });
  it("never loses a thrown string or an empty error", () => {
    expect(errorText("refused")).toBe("refused");
    expect(errorText(undefined)).toBe("The request failed without saying why.");
  });
});
