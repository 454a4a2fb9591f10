import { describe, expect, it } from "vitest";
import { installRecordingMocks, registered, valueOf } from "../testing/pulumi-mocks.js";

// setMocks before the component module creates any resource.
const mocks = installRecordingMocks({
  outputs: ({ type }) => (type === "kubernetes:helm.sh/v3:Release" ? { status: { status: "deployed" } } : {}),
});
const { GpuFleet, gpufleetChartValues, gpuOperatorValues, mergeValues, readCrds, DEFAULT_CHART_PATH } =
  await import("./gpufleet.js");

const CRD_TYPE = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition";
const RELEASE_TYPE = "kubernetes:helm.sh/v3:Release";
const MD_TYPE = "kubernetes:gpufleet.io/v1alpha1:ModelDeployment";

const chatSpec = {
  model: {
    name: "llama-3.1-8b-instruct",
    source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } },
  },
  gpu: { products: ["NVIDIA-L4"] },
  replicas: 2,
} as never;

describe("gpufleetChartValues", () => {
  it("watches only the model namespace and turns leader election off for a single operator pod", () => {
    const values = gpufleetChartValues({
      namespace: "gpufleet-system",
      modelNamespace: "models",
      operator: { replicas: 1, logLevel: "debug" },
    });
    expect(values).toEqual({
      watchNamespaces: ["models"],
      replicaCount: 1,
      leaderElection: { enabled: false },
      operator: { logLevel: "debug" },
    });
  });

  it("lets raw chart values override the derived ones, merging nested objects", () => {
    const values = gpufleetChartValues({
      namespace: "ns",
      operator: { replicas: 3, image: { repository: "registry.example/gpufleet", tag: "1.2.3" } },
      chart: { values: { image: { tag: "1.2.4" }, watchNamespaces: ["a", "b"] } },
    });
    expect(values.image).toEqual({ repository: "registry.example/gpufleet", tag: "1.2.4" });
    expect(values.watchNamespaces).toEqual(["a", "b"]);
    expect(values.leaderElection).toEqual({ enabled: true });
  });
});

describe("gpuOperatorValues", () => {
  it("leaves the driver and toolkit to NVIDIA node images and keeps device plugin and GFD on", () => {
    const values = gpuOperatorValues({ enabled: true, driver: "preinstalled", version: "v25.3.0" });
    expect(values).toMatchObject({
      driver: { enabled: false },
      toolkit: { enabled: false },
      devicePlugin: { enabled: true },
      gfd: { enabled: true },
    });
    expect((values.daemonsets as { tolerations: unknown[] }).tolerations).toContainEqual({
      key: "nvidia.com/gpu",
      operator: "Exists",
      effect: "NoSchedule",
    });
  });

  it("installs the driver when the image has none", () => {
    expect(gpuOperatorValues({ enabled: true, driver: "operator", version: "v25.3.0" }).driver).toEqual({
      enabled: true,
    });
  });
});

describe("mergeValues", () => {
  it("replaces arrays instead of concatenating them, as Helm does", () => {
    expect(mergeValues({ list: [1, 2], nested: { a: 1, b: 2 } }, { list: [3], nested: { b: 3 } })).toEqual({
      list: [3],
      nested: { a: 1, b: 3 },
    });
  });
});

describe("readCrds", () => {
  it("reads the generated CRDs from crds/", () => {
    const names = readCrds().map((crd) => (crd.metadata as { name: string }).name);
    expect(names).toEqual(expect.arrayContaining(["modeldeployments.gpufleet.io", "modelroutes.gpufleet.io", "tenants.gpufleet.io", "usagetiers.gpufleet.io"]));
    expect(names.every((name) => name.endsWith(".gpufleet.io"))).toBe(true);
  });
});

describe("GpuFleet component (Pulumi mocks)", () => {
  it("creates the namespaces, the CRD, the chart release (values from the args) and the ModelDeployments", async () => {
    const fleet = new GpuFleet("fleet", {
      namespace: "gpufleet-system",
      modelNamespace: "models",
      operator: { replicas: 1 },
      modelDeployments: [{ name: "chat", spec: chatSpec }],
    });
    await registered([fleet, fleet.release, ...fleet.crds, ...fleet.modelDeployments]);

    const namespaces = mocks.ofType("kubernetes:core/v1:Namespace").map((ns) => ns.inputs.metadata.name);
    expect(namespaces).toEqual(expect.arrayContaining(["gpufleet-system", "models"]));

    const crd = mocks.named(CRD_TYPE, "fleet-crd-modeldeployments.gpufleet.io");
    expect(crd.inputs.metadata.name).toBe("modeldeployments.gpufleet.io");
    expect(crd.inputs.spec.group).toBe("gpufleet.io");
    expect(crd.inputs.spec.names.kind).toBe("ModelDeployment");

    const release = mocks.named(RELEASE_TYPE, "fleet-operator");
    expect(release.inputs).toMatchObject({
      name: "gpufleet",
      chart: DEFAULT_CHART_PATH,
      namespace: "gpufleet-system",
      skipCrds: true,
    });
    expect(release.inputs.values).toEqual({
      watchNamespaces: ["models"],
      replicaCount: 1,
      leaderElection: { enabled: false },
    });

    const md = mocks.named(MD_TYPE, "fleet-md-chat");
    expect(md.inputs.metadata).toMatchObject({
      name: "chat",
      namespace: "models",
      labels: { "app.kubernetes.io/managed-by": "pulumi" },
    });
    expect(md.inputs.spec).toEqual(chatSpec);

    expect(await valueOf(fleet.modelDeploymentNames)).toEqual(["models/chat"]);
    expect(await valueOf(fleet.releaseStatus)).toBe("deployed");
    expect(fleet.gpuOperatorRelease).toBeUndefined();
  });

  it("adds NVIDIA's GPU operator release with computed values when enabled, and skips the CRD when told", async () => {
    const fleet = new GpuFleet("gke", {
      namespace: "gpufleet",
      crds: { install: false },
      gpuOperator: { enabled: true, driver: "preinstalled", version: "v25.3.0" },
    });
    await registered([fleet, fleet.release, fleet.gpuOperatorRelease!]);
    expect(fleet.crds).toEqual([]);
    expect(mocks.ofType(CRD_TYPE).filter((crd) => crd.name.startsWith("gke-"))).toEqual([]);
    const gpuOperator = mocks.named(RELEASE_TYPE, "gke-gpu-operator");
    expect(gpuOperator.inputs).toMatchObject({
      chart: "gpu-operator",
      version: "v25.3.0",
      repositoryOpts: { repo: "https://helm.ngc.nvidia.com/nvidia" },
      namespace: "gpu-operator",
      values: { driver: { enabled: false }, gfd: { enabled: true } },
    });
  });
});
