import { afterEach, describe, expect, it } from "vitest";
import { createOperatorMetrics } from "./metrics.js";
import { startOpsServer, type OpsServer, type Readiness } from "./ops-server.js";

describe("ops server", () => {
  let server: OpsServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  async function start(state: { healthy: boolean; ready: Readiness }) {
    const metrics = createOperatorMetrics(undefined, { processMetrics: false });
    metrics.leader.set(1);
    server = await startOpsServer({
      host: "127.0.0.1",
      port: 0,
      registry: metrics.registry,
      healthy: () => state.healthy,
      ready: () => state.ready,
    });
    const get = async (path: string) => {
      const res = await fetch(`http://127.0.0.1:${server!.port}${path}`);
      return { status: res.status, body: await res.text(), type: res.headers.get("content-type") };
    };
    return get;
  }

  it("answers /healthz and /readyz from the callbacks, with a reason when not ready", async () => {
    const state: { healthy: boolean; ready: Readiness } = {
      healthy: true,
      ready: { ready: false, reason: "informers not synced" },
    };
    const get = await start(state);
    expect(await get("/healthz")).toMatchObject({ status: 200, body: "ok\n" });
    expect(await get("/readyz")).toMatchObject({ status: 503, body: "not ready: informers not synced\n" });
    state.ready = true;
    state.healthy = false;
    expect(await get("/readyz")).toMatchObject({ status: 200, body: "ok\n" });
    expect((await get("/healthz")).status).toBe(500);
    expect((await get("/nope")).status).toBe(404);
  });

  it("serves the registry in Prometheus text format on /metrics", async () => {
    const get = await start({ healthy: true, ready: true });
    const res = await get("/metrics");
    expect(res.status).toBe(200);
    expect(res.type).toContain("text/plain");
    expect(res.body).toContain("# TYPE gpufleet_leader gauge");
    expect(res.body).toContain("gpufleet_leader 1");
  });
});
