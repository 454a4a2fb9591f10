import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { V1Pod } from "@kubernetes/client-node";
import { afterEach, describe, expect, it } from "vitest";
import { engineHealthy, readyEndpointsOf, startServiceProxy, type ServiceProxy } from "./service-proxy.js";
import { startEngineServer } from "./server.js";
import { SMALL_ENGINE } from "./testing.js";

const servers: Server[] = [];
let proxy: ServiceProxy | undefined;

/** An upstream that answers with its own name after `delayMs`. */
async function upstream(name: string, delayMs: number): Promise<string> {
  const server = createServer((_req, res) => setTimeout(() => res.end(name), delayMs));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

describe("service proxy", () => {
  it("sends each request to the endpoint with the fewest requests in flight", async () => {
    const slow = await upstream("slow", 300);
    const fast = await upstream("fast", 0);
    proxy = await startServiceProxy({ endpoints: () => [slow, fast] });
    const first = fetch(`${proxy.url}/v1/models`).then((r) => r.text()); // goes to `slow` (tie → first) and stays in flight
    await new Promise((resolve) => setTimeout(resolve, 50));
    const answers: string[] = [];
    for (let i = 0; i < 3; i++) answers.push(await (await fetch(`${proxy.url}/x`)).text()); // one at a time: `fast` is always idle
    expect(answers).toEqual(["fast", "fast", "fast"]);
    expect(await first).toBe("slow");
  });

  it("follows the endpoint set as it changes and answers 503 with none", async () => {
    const one = await upstream("one", 0);
    let current: string[] = [];
    proxy = await startServiceProxy({ endpoints: () => current });
    expect((await fetch(`${proxy.url}/health`)).status).toBe(503);
    current = [one];
    expect(await (await fetch(`${proxy.url}/health`)).text()).toBe("one");
  });

  it("routes only to Running, Ready engine pods, on their `http` port", () => {
    const pod = (name: string, ip: string, ready: boolean): V1Pod => ({
      metadata: { name, namespace: "ns", labels: { "inference.networking.k8s.io/engine-type": "vllm" } },
      spec: { containers: [{ name: "engine", ports: [{ name: "http", containerPort: 8000 }] }] },
      status: { phase: "Running", podIP: ip, conditions: [{ type: "Ready", status: ready ? "True" : "False" }] },
    });
    expect(readyEndpointsOf([pod("a", "127.1.0.2", true), pod("b", "127.1.0.3", false), pod("c", "127.1.0.1", true)])).toEqual([
      "http://127.1.0.1:8000",
      "http://127.1.0.2:8000",
    ]);
  });
});

describe("engineHealthy (the readiness probe KWOK does not run)", () => {
  it("is false while the engine loads its model, true once it serves, false when nothing listens", async () => {
    const engine = await startEngineServer({
      host: "127.0.0.1",
      port: 0,
      engine: "vllm",
      modelName: "sim",
      params: SMALL_ENGINE,
      loadDelayMs: 400,
    });
    try {
      expect(await engineHealthy(engine.url)).toBe(false);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await engineHealthy(engine.url)).toBe(true);
    } finally {
      await engine.close();
    }
    expect(await engineHealthy(engine.url, 300)).toBe(false);
  });
});
