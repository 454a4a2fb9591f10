import { describe, expect, it } from "vitest";
import {
  createOperatorMetrics,
  forgetModelDeployment,
  observeReconcile,
  operatorMetrics,
  setReplicaGauges,
  workQueueMetricsHooks,
} from "./metrics.js";

describe("operator metrics", () => {
  it("exposes every operator metric by name", async () => {
    const m = createOperatorMetrics();
    observeReconcile(m, "success", 0.02);
    observeReconcile(m, "error", 0.3);
    setReplicaGauges(m, "ml", "llama", { desired: 3, ready: 2, current: 3 });
    m.autoscalerDecisions.inc({ namespace: "ml", name: "llama", direction: "up" });
    m.kvCacheUtilization.set({ namespace: "ml", name: "llama" }, 0.83);
    m.queueDepth.set({ namespace: "ml", name: "llama" }, 12);
    m.ttftWithinTarget.set({ namespace: "ml", name: "llama" }, 0.991);
    m.leader.set(1);
    const hooks = workQueueMetricsHooks(m);
    hooks.onDepthChange?.(4);
    hooks.onRetry?.("ml/llama", 1, 500, new Error("x"));
    hooks.onWait?.("ml/llama", 1500);
    const text = await m.registry.metrics();
    expect(text).toContain('gpufleet_reconcile_duration_seconds_count{result="success"} 1');
    expect(text).toContain('gpufleet_reconcile_total{result="error"} 1');
    expect(text).toContain("gpufleet_reconcile_errors_total 1");
    expect(text).toContain("gpufleet_workqueue_depth 4");
    expect(text).toContain("gpufleet_workqueue_retries_total 1");
    expect(text).toContain("gpufleet_workqueue_wait_seconds_sum 1.5");
    expect(text).toContain('gpufleet_modeldeployment_replicas{namespace="ml",name="llama",state="ready"} 2');
    expect(text).toContain(
      'gpufleet_autoscaler_decisions_total{namespace="ml",name="llama",direction="up"} 1',
    );
    expect(text).toContain('gpufleet_autoscaler_kv_cache_utilization{namespace="ml",name="llama"} 0.83');
    expect(text).toContain('gpufleet_autoscaler_queue_depth{namespace="ml",name="llama"} 12');
    expect(text).toContain('gpufleet_autoscaler_ttft_within_target_ratio{namespace="ml",name="llama"} 0.991');
    expect(text).toContain("gpufleet_leader 1");
    expect(text).toContain("process_cpu_seconds_total");
  });

  it("drops a deleted ModelDeployment's series", async () => {
    const m = createOperatorMetrics(undefined, { processMetrics: false });
    setReplicaGauges(m, "ml", "gone", { desired: 1, ready: 1, current: 1 });
    m.queueDepth.set({ namespace: "ml", name: "gone" }, 1);
    m.ttftWithinTarget.set({ namespace: "ml", name: "gone" }, 1);
    forgetModelDeployment(m, "ml", "gone");
    const text = await m.registry.metrics();
    expect(text).not.toContain('name="gone"');
  });
});

describe("operatorMetrics", () => {
  it("is one registry per process", () => {
    expect(operatorMetrics().registry).toBe(operatorMetrics().registry);
  });
});
