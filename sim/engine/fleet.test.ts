import type { V1Pod } from "@kubernetes/client-node";
import { afterEach, describe, expect, it } from "vitest";
import { diffFleet, planFleet, SimFleet } from "./fleet.js";
import { SMALL_ENGINE } from "./testing.js";


function enginePod(
  name: string,
  ip: string,
  overrides: { engine?: string; phase?: string; port?: number; args?: string[] } = {},
): V1Pod {
  return {
    metadata: {
      name,
      namespace: "team-a",
      uid: `uid-${name}`,
      labels: {
        "app.kubernetes.io/managed-by": "gpufleet",
        "gpufleet.io/model-deployment": "llama",
        "inference.networking.k8s.io/engine-type": overrides.engine ?? "vllm",
      },
    },
    spec: {
      containers: [
        {
          name: "engine",
          args: overrides.args ?? ["--served-model-name", "meta-llama/Llama-3.1-8B-Instruct"],
          ports: [{ name: "http", containerPort: overrides.port ?? 8000 }],
        },
      ],
    },
    status: {
      phase: overrides.phase ?? "Running",
      podIP: ip,
      conditions: [{ type: "Ready", status: "True" }],
    },
  };
}

describe("planFleet and diffFleet", () => {
  it("plans one engine per Running engine pod with its IP, http port, engine and served model name", () => {
    const plan = planFleet([
      enginePod("a", "127.1.0.5"),
      enginePod("b", "127.1.0.6", { engine: "trtllm-serve", args: [] }),
      enginePod("c", "127.1.0.7", { phase: "Pending" }),
    ]);
    expect([...plan.keys()]).toEqual(["team-a/a", "team-a/b"]);
    expect(plan.get("team-a/a")).toMatchObject({
      host: "127.1.0.5",
      port: 8000,
      engine: "vllm",
      modelName: "meta-llama/Llama-3.1-8B-Instruct",
      deployment: "llama",
    });
    expect(plan.get("team-a/b")).toMatchObject({ engine: "tensorrt-llm", modelName: "llama" });
  });

  it("runs a vLLM pod's engine with priority scheduling when its args ask for it, and restarts it when they change", () => {
    const plan = planFleet([
      enginePod("a", "127.1.0.5", { args: ["--served-model-name", "m", "--scheduling-policy", "priority"] }),
      enginePod("b", "127.1.0.6", { args: ["--scheduling-policy=priority", "--scheduling-policy=fcfs"] }),
      enginePod("c", "127.1.0.7", { engine: "sglang", args: ["--scheduling-policy", "priority"] }),
    ]);
    expect(plan.get("team-a/a")?.schedulingPolicy).toBe("priority");
    expect(plan.get("team-a/b")?.schedulingPolicy).toBeUndefined();
    expect(plan.get("team-a/c")?.schedulingPolicy).toBeUndefined();
    const fcfs = planFleet([enginePod("a", "127.1.0.5", { args: ["--served-model-name", "m"] })]);
    expect(diffFleet(fcfs, plan).stop).toEqual(["team-a/a"]);
  });

  it("restarts an engine whose pod was replaced and stops one whose pod is gone", () => {
    const before = planFleet([enginePod("a", "127.1.0.5"), enginePod("b", "127.1.0.6")]);
    const after = planFleet([enginePod("a", "127.1.0.9")]);
    const { start, stop } = diffFleet(before, after);
    expect(stop.sort()).toEqual(["team-a/a", "team-a/b"]);
    expect(start.map((s) => s.host)).toEqual(["127.1.0.9"]);
    expect(diffFleet(after, after)).toEqual({ start: [], stop: [] });
  });
});

describe("SimFleet", () => {
  let fleet: SimFleet | undefined;
  afterEach(async () => {
    await fleet?.stop();
    fleet = undefined;
  });

  it("serves each pod's engine on its loopback pod IP and stops it when the pod goes", async () => {
    let pods = [
      enginePod("a", "127.1.0.5", { port: 0 }),
      enginePod("b", "127.1.0.6", { port: 0, engine: "trtllm-serve" }),
    ];
    fleet = new SimFleet({ listPods: async () => pods, paramsFor: () => SMALL_ENGINE });
    await fleet.reconcileOnce();
    const servers = fleet.servers();
    expect([...servers.keys()]).toEqual(["team-a/a", "team-a/b"]);
    const a = servers.get("team-a/a");
    expect(a?.url).toMatch(/^http:\/\/127\.1\.0\.5:\d+$/);
    expect((await fetch(`${a?.url}/health`)).status).toBe(200);
    const b = servers.get("team-a/b");
    expect((await fetch(`${b?.url}/prometheus/metrics`)).status).toBe(200);

    pods = [pods[0] as V1Pod];
    await fleet.reconcileOnce();
    expect([...fleet.servers().keys()]).toEqual(["team-a/a"]);
    await expect(fetch(`${b?.url}/health`)).rejects.toThrow();
  });
});
