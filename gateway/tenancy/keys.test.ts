import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { KeyIndex, digestFromSecretValue, digestKey, parseBearer } from "./keys.js";

describe("API keys", () => {
  it("reads a Bearer key and refuses anything else", () => {
    expect(parseBearer("Bearer sk-abc_123")).toBe("sk-abc_123");
    expect(parseBearer("bearer  sk-x ")).toBe("sk-x");
    expect(parseBearer("Basic dXNlcjpwYXNz")).toBeUndefined();
    expect(parseBearer("Bearer ")).toBeUndefined();
    expect(parseBearer("Bearer a b")).toBeUndefined();
    expect(parseBearer(`Bearer ${"k".repeat(513)}`)).toBeUndefined();
    expect(parseBearer(undefined)).toBeUndefined();
    expect(parseBearer(["Bearer a", "Bearer b"])).toBeUndefined();
  });

  it("turns a plain Secret value (one trailing newline dropped) or a SHA-256 hex digest into the same digest", () => {
    const hex = createHash("sha256").update("sk-tenant-a").digest("hex");
    const plain = digestFromSecretValue(Buffer.from("sk-tenant-a\n"), "Plain");
    const hashed = digestFromSecretValue(Buffer.from(hex.toUpperCase()), "SHA256");
    expect(plain).toEqual({ digest: digestKey("sk-tenant-a") });
    expect(hashed).toEqual({ digest: digestKey("sk-tenant-a") });
    expect(digestFromSecretValue(Buffer.from("not-hex"), "SHA256")).toEqual({ problem: "malformed-digest" });
    expect(digestFromSecretValue(Buffer.from(""), "Plain")).toEqual({ problem: "empty" });
    expect(digestFromSecretValue(undefined, "Plain")).toEqual({ problem: "missing" });
  });

  it("finds the owner of a key among many, and nobody for a wrong or near-miss key", () => {
    const index = new KeyIndex(
      Array.from({ length: 50 }, (_, i) => ({ digest: digestKey(`sk-${i}`), owner: `ns/t${i}` })),
    );
    expect(index.match("sk-17")).toBe("ns/t17");
    expect(index.match("sk-170")).toBeUndefined();
    expect(index.match("sk-1")).toBe("ns/t1");
    expect(index.match("")).toBeUndefined();
  });
});
