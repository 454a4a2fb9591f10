import { describe, expect, it } from "vitest";
import {
  decodeObjectData,
  MAX_CONFIG_BYTES,
  MAX_TOKEN_BYTES,
  TenantObjectCache,
  TenantObjectError,
  type TenantObjectGetter,
  type TenantValueState,
} from "./tenant-objects.js";

async function settled(cache: TenantObjectCache, ...args: Parameters<TenantObjectCache["lookup"]>): Promise<TenantValueState> {
  for (let i = 0; i < 50; i++) {
    const state = cache.lookup(...args);
    if (state.state !== "pending") return state;
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  throw new Error("still pending");
}

describe("reading one key of a tenant's Secret or ConfigMap", () => {
  it("reads only the named object in the given namespace, and answers from the cache afterwards", async () => {
    const calls: string[] = [];
    const get: TenantObjectGetter = async (kind, namespace, name) => {
      calls.push(`${kind} ${namespace}/${name}`);
      return { token: "hf_secret_value\n" };
    };
    const cache = new TenantObjectCache({ get });
    const state = await settled(cache, "Secret", "team-a", "hf", "token", "team-a/md");
    expect(state).toMatchObject({ state: "ready", value: "hf_secret_value" });
    cache.lookup("Secret", "team-a", "hf", "token", "team-a/md");
    expect(calls).toEqual(["Secret team-a/hf"]);
  });

  it("refuses a value over its bound instead of truncating it, and never quotes a Secret's value", async () => {
    const big = "x".repeat(MAX_TOKEN_BYTES + 1);
    const cache = new TenantObjectCache({ get: async () => ({ token: big, config: "y".repeat(MAX_CONFIG_BYTES + 1) }) });
    const token = await settled(cache, "Secret", "ns", "s", "token", "ns/a");
    expect(token).toMatchObject({ state: "failed", problem: "TooLarge" });
    if (token.state === "failed") expect(token.message).not.toContain("xxxx");
    const config = await settled(cache, "ConfigMap", "ns", "c", "config", "ns/a");
    expect(config).toMatchObject({ state: "failed", problem: "TooLarge" });
  });

  it("says which object or key is missing, and when the operator may not read it", async () => {
    const get: TenantObjectGetter = async (_kind, _ns, name) => {
      if (name === "forbidden") throw new TenantObjectError(403, "HTTP 403");
      if (name === "absent") return undefined;
      return { other: "1" };
    };
    const cache = new TenantObjectCache({ get, schedule: () => undefined });
    expect(await settled(cache, "Secret", "ns", "absent", "token", "ns/a")).toMatchObject({
      problem: "NotFound",
      message: "Secret ns/absent not found",
    });
    expect(await settled(cache, "Secret", "ns", "present", "token", "ns/a")).toMatchObject({
      problem: "NotFound",
      message: "Secret ns/present has no key token",
    });
    expect(await settled(cache, "Secret", "ns", "forbidden", "token", "ns/a")).toMatchObject({
      problem: "Forbidden",
      message: "the operator may not read Secret ns/forbidden (HTTP 403)",
    });
  });

  it("re-reads after the refresh interval and wakes subscribers only when the value changed", async () => {
    let now = 0;
    let value = "v1";
    const woken: string[][] = [];
    const cache = new TenantObjectCache({
      get: async () => ({ "config.json": value }),
      now: () => now,
      refreshMs: 1000,
      onSettled: (subscribers) => woken.push([...subscribers]),
    });
    const first = await settled(cache, "ConfigMap", "ns", "c", "config.json", "ns/a");
    expect(woken).toHaveLength(1);
    now = 1500;
    cache.lookup("ConfigMap", "ns", "c", "config.json", "ns/a");
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(woken).toHaveLength(1); // same content: nobody woken
    value = "v2";
    now = 3000;
    cache.lookup("ConfigMap", "ns", "c", "config.json", "ns/a");
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(woken).toEqual([["ns/a"], ["ns/a"]]);
    const second = cache.lookup("ConfigMap", "ns", "c", "config.json", "ns/a");
    expect(second.state === "ready" && first.state === "ready" && second.fingerprint !== first.fingerprint).toBe(true);
  });

  it("decodes a Secret's base64 data and passes a ConfigMap's through", () => {
    expect(decodeObjectData("Secret", { data: { token: Buffer.from("abc").toString("base64") } })).toEqual({ token: "abc" });
    expect(decodeObjectData("ConfigMap", { data: { "config.json": "{}" } })).toEqual({ "config.json": "{}" });
    expect(decodeObjectData("Secret", undefined)).toBeUndefined();
  });
});
