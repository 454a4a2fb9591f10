import { describe, expect, it } from "vitest";
import type { ModelDeployment } from "../api/modeldeployment.js";
import type { ModelRoute } from "../api/modelroute.js";
import { ModelRouteStatusWriter, modelRouteStatus, resolveModelRoutes, sameStatus, servedModels, withTransitionTimes } from "./modelroute-status.js";

const md = (namespace: string, name: string, model: string, created = "2026-12-01T00:00:00Z"): ModelDeployment =>
  ({ metadata: { namespace, name, creationTimestamp: created }, spec: { model: { name: model } } }) as unknown as ModelDeployment;
const route = (namespace: string, name: string, alias: string, steps: string[], created = "2026-12-01T01:00:00Z"): ModelRoute => ({
  metadata: { namespace, name, creationTimestamp: created, generation: 3 },
  spec: { model: alias, steps: steps.map((modelDeployment) => ({ modelDeployment })), streaming: "hold", largeForTiers: ["gold"] },
});

describe("ModelRoute resolution and status", () => {
  const served = servedModels([
    md("team-a", "small", "chat-small"),
    md("team-a", "large", "chat-large"),
    md("team-b", "other", "chat-other"),
    // A later ModelDeployment claiming a model name already served does not serve.
    md("team-a", "copy", "chat-small", "2026-12-01T00:30:00Z"),
  ]);

  it("resolves each step to the model its ModelDeployment serves, in the route's namespace only", () => {
    const r = resolveModelRoutes(
      [route("team-a", "chat", "chat", ["small", "large"]), route("team-a", "cross", "cross", ["small", "other"]), route("team-a", "dup", "dup", ["copy", "large"])],
      served,
    );
    expect(r.get("team-a/chat")).toMatchObject({ outcome: "serving", steps: [{ model: "chat-small" }, { model: "chat-large" }] });
    expect(r.get("team-a/cross")).toMatchObject({ outcome: "missing", missing: ["other"] });
    expect(r.get("team-a/dup")).toMatchObject({ outcome: "missing", missing: ["copy"] });
  });

  it("gives an alias to the oldest route, and none when a ModelDeployment serves that name itself", () => {
    const r = resolveModelRoutes(
      [
        route("team-b", "newer", "chat", ["small", "large"], "2026-12-01T02:00:00Z"),
        route("team-a", "older", "chat", ["small", "large"], "2026-12-01T01:00:00Z"),
        route("team-a", "shadow", "chat-large", ["small", "large"]),
      ],
      served,
    );
    expect(r.get("team-a/older")?.outcome).toBe("serving");
    expect(r.get("team-b/newer")).toMatchObject({ outcome: "taken", by: "team-a/older" });
    expect(r.get("team-a/shadow")).toMatchObject({ outcome: "shadowed", by: "team-a/large" });
  });

  it("writes Ready, the resolved steps, the missing ModelDeployments and the generation it saw", () => {
    const ok = route("team-a", "chat", "chat", ["small", "large"]);
    const broken = route("team-a", "broken", "broken", ["small", "gone"]);
    const r = resolveModelRoutes([ok, broken], served);
    expect(modelRouteStatus(ok, r.get("team-a/chat"))).toEqual({
      observedGeneration: 3,
      conditions: [{ type: "Ready", status: "True", reason: "StepsResolved", message: "Alias chat serves: small (chat-small) -> large (chat-large).", lastTransitionTime: "" }],
      steps: [
        { modelDeployment: "small", model: "chat-small", found: true },
        { modelDeployment: "large", model: "chat-large", found: true },
      ],
    });
    const status = modelRouteStatus(broken, r.get("team-a/broken"));
    expect(status.conditions?.[0]).toMatchObject({ status: "False", reason: "ModelDeploymentMissing" });
    expect(status.conditions?.[0]?.message).toContain("ModelDeployment gone is not served in namespace team-a");
    expect(status.missingModelDeployments).toEqual(["gone"]);
    expect(status.steps?.[1]).toEqual({ modelDeployment: "gone", found: false });
  });

  it("keeps a condition's transition time while its status holds, and tells a changed status from an equal one", () => {
    const ok = route("team-a", "chat", "chat", ["small", "large"]);
    const first = withTransitionTimes(modelRouteStatus(ok, resolveModelRoutes([ok], served).get("team-a/chat")), undefined, new Date("2026-12-01T03:00:00.700Z"));
    expect(first.conditions?.[0]?.lastTransitionTime).toBe("2026-12-01T03:00:00.000Z");
    const again = modelRouteStatus(ok, resolveModelRoutes([ok], served).get("team-a/chat"));
    expect(sameStatus(first, again)).toBe(true);
    expect(withTransitionTimes(again, first, new Date("2026-12-01T04:00:00Z")).conditions?.[0]?.lastTransitionTime).toBe("2026-12-01T03:00:00.000Z");
    const gone = modelRouteStatus(ok, resolveModelRoutes([ok], servedModels([md("team-a", "small", "chat-small")])).get("team-a/chat"));
    expect(sameStatus(first, gone)).toBe(false);
    expect(withTransitionTimes(gone, first, new Date("2026-12-01T04:00:00Z")).conditions?.[0]?.lastTransitionTime).toBe("2026-12-01T04:00:00.000Z");
  });

  it("patches only the routes whose status changed, removing a missing list that no longer applies", async () => {
    const calls: Array<[string, string, { body: { status: Record<string, unknown> }; contentType: string }]> = [];
    const client = { request: async (...args: unknown[]) => void calls.push(args as never) };
    const deployments = { addHandlers: () => undefined, list: () => [md("team-a", "small", "chat-small"), md("team-a", "large", "chat-large")] };
    const writer = new ModelRouteStatusWriter({
      client: client as never,
      modelDeployments: deployments as never,
      namespaces: ["team-a"],
      now: () => new Date("2026-12-01T03:00:00Z"),
    });
    const chat = route("team-a", "chat", "chat", ["small", "large"]);
    const fixed = route("team-a", "fixed", "fixed", ["small", "large"]);
    // "fixed" was written when a step was missing; "chat" already has what it would be written.
    fixed.status = { conditions: [{ type: "Ready", status: "False", reason: "ModelDeploymentMissing", message: "", lastTransitionTime: "2026-12-01T01:00:00Z" }], missingModelDeployments: ["large"] };
    chat.status = modelRouteStatus(chat, resolveModelRoutes([chat, fixed], servedModels(deployments.list())).get("team-a/chat"));
    Object.defineProperty(writer.informer, "hasSynced", { get: () => true });
    (writer.informer as unknown as { list: () => ModelRoute[] }).list = () => [chat, fixed];
    await writer.sync();
    expect(calls.map((c) => c[1])).toEqual(["/apis/gpufleet.io/v1alpha1/namespaces/team-a/modelroutes/fixed/status"]);
    const [method, , options] = calls[0]!;
    expect(method).toBe("PATCH");
    expect(options.contentType).toBe("application/merge-patch+json");
    expect(options.body.status).toMatchObject({ missingModelDeployments: null, conditions: [{ status: "True", lastTransitionTime: "2026-12-01T03:00:00.000Z" }] });
  });
});
