import { describe, expect, it } from "vitest";
import { installRecordingMocks, quiesced, valueOf } from "../testing/pulumi-mocks.js";

const mocks = installRecordingMocks({
  outputs: ({ type, name }) => {
    if (type === "eks:index:Cluster")
      return { kubeconfigJson: JSON.stringify({ kind: "Config", cluster: name }) };
    if (type === "gcp:container/cluster:Cluster") {
      return { name, endpoint: "gke.example.invalid", masterAuth: { clusterCaCertificate: "Q0E=" } };
    }
    if (type === "kubernetes:helm.sh/v3:Release") return { status: { status: "deployed" } };
    return {};
  },
  invokes: {
    "aws:index/getAvailabilityZones:getAvailabilityZones": () => ({
      names: ["us-east-1a", "us-east-1b", "us-east-1c"],
    }),
  },
});
const { fleetProgram, validateFleetConfig } = await import("./program.js");
type FleetConfig = import("./program.js").FleetConfig;

const llamaDeployment = {
  model: {
    name: "llama-3.1-8b-instruct",
    source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } },
  },
  autoscaling: { enabled: true, maxReplicas: 8 },
};
const llama70bDeployment = {
  model: {
    name: "llama-3.1-70b-instruct",
    quantization: "fp8",
    source: { huggingFace: { repo: "meta-llama/Llama-3.1-70B-Instruct" } },
  },
} as const;

// Demand in Germany and in the PJM grid (Virginia); a 40 ms target keeps each origin on its own
// continent, so the plan must use both the GCP region in Finland and the AWS region in Virginia.
const config: FleetConfig = {
  latencyTargetMs: 40,
  gcpProject: "test-project",
  operator: { replicas: 1 },
  regions: [
    {
      region: "gcp:europe-north1",
      offers: [
        { gpuProduct: "nvidia-l4", quotaGpus: 16, pricePerGpuHour: 0.8 },
        { gpuProduct: "nvidia-h100-80gb", quotaGpus: 16, pricePerGpuHour: 12 },
      ],
    },
    { region: "aws:us-east-1", offers: [{ gpuProduct: "nvidia-l4", quotaGpus: 16, pricePerGpuHour: 0.8 }] },
  ],
  models: [
    {
      name: "llama-8b",
      replicaShapes: [{ gpuProduct: "nvidia-l4", gpusPerReplica: 1, tokensPerSecondPerReplica: 1000 }],
      demand: [
        { origin: "DE", tokensPerSecond: 2000 },
        { origin: "US-MIDA-PJM", tokensPerSecond: 1000 },
      ],
      deployment: llamaDeployment,
    },
    {
      name: "llama-70b",
      replicaShapes: [{ gpuProduct: "nvidia-h100-80gb", gpusPerReplica: 4, tokensPerSecondPerReplica: 5000 }],
      demand: [{ origin: "DE", tokensPerSecond: 4000 }],
      deployment: llama70bDeployment,
    },
  ],
};

describe("validateFleetConfig", () => {
  it("accepts the test config and names every problem of a broken one", () => {
    expect(validateFleetConfig(config)).toEqual([]);
    const problems = validateFleetConfig({
      ...config,
      gcpProject: undefined as never,
      latencyTargetMs: 0,
      models: [{ ...config.models[0]!, name: "Llama_8B" }],
    });
    expect(problems).toEqual([
      "latencyTargetMs: a positive number of milliseconds",
      "models.Llama_8B: name must be a DNS label (it names the ModelDeployment)",
      "gcpProject: required when a gcp region is a candidate",
    ]);
  });
});

describe("fleet program (Pulumi mocks)", () => {
  it("places the models, provisions GKE and EKS GPU pools in the chosen regions, installs gpufleet and creates the placed ModelDeployments", async () => {
    const outputs = await fleetProgram(config);
    // Every resource is registered once the outputs that depend on the last ones resolve.
    const kubeconfigs = await valueOf(outputs.kubeconfigs);
    await quiesced(mocks);

    // Regions chosen: one cluster per region holding replicas.
    expect(Object.keys(outputs.clusters).sort()).toEqual(["aws-us-east-1", "gcp-europe-north1"]);
    expect(outputs.placement).toMatchObject({ strategy: "carbon-aware" });
    const replicas = outputs.placement.replicas as Array<{
      model: string;
      region: string;
      gpuProduct: string;
      replicas: number;
    }>;
    expect(replicas).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          model: "llama-8b",
          region: "gcp:europe-north1",
          gpuProduct: "nvidia-l4",
          replicas: 2,
        }),
        expect.objectContaining({
          model: "llama-8b",
          region: "aws:us-east-1",
          gpuProduct: "nvidia-l4",
          replicas: 1,
        }),
        expect.objectContaining({
          model: "llama-70b",
          region: "gcp:europe-north1",
          gpuProduct: "nvidia-h100-80gb",
          replicas: 1,
        }),
      ]),
    );
    expect(await valueOf(outputs.clusters["gcp-europe-north1"]!.modelDeployments)).toEqual([
      "models/llama-70b",
      "models/llama-8b",
    ]);
    expect(await valueOf(outputs.clusters["aws-us-east-1"]!.modelDeployments)).toEqual(["models/llama-8b"]);

    // GKE: GPU node pools with the right accelerators, driver installation, pool label and GPU taint.
    const gkeL4 = mocks.named("gcp:container/nodePool:NodePool", "gcp-europe-north1-l4");
    expect(gkeL4.inputs.nodeConfig).toMatchObject({
      machineType: "g2-standard-8",
      guestAccelerators: [
        { type: "nvidia-l4", count: 1, gpuDriverInstallationConfig: { gpuDriverVersion: "LATEST" } },
      ],
      labels: { "gpufleet.io/pool": "l4" },
      taints: [{ key: "nvidia.com/gpu", value: "present", effect: "NO_SCHEDULE" }],
    });
    expect(gkeL4.inputs.autoscaling).toMatchObject({ totalMinNodeCount: 2, totalMaxNodeCount: 3 });
    const gkeH100 = mocks.named("gcp:container/nodePool:NodePool", "gcp-europe-north1-h100-80gb");
    expect(gkeH100.inputs.nodeConfig).toMatchObject({
      machineType: "a3-highgpu-4g",
      guestAccelerators: [{ type: "nvidia-h100-80gb", count: 4 }],
      labels: { "gpufleet.io/pool": "h100-80gb" },
    });
    expect(mocks.named("gcp:container/cluster:Cluster", "gcp-europe-north1-gke").inputs).toMatchObject({
      location: "europe-north1",
      removeDefaultNodePool: true,
    });

    // EKS: a managed node group on the NVIDIA AL2023 AMI, labelled and tainted the same way.
    const eksL4 = mocks.named("eks:index:ManagedNodeGroup", "aws-us-east-1-l4");
    expect(eksL4.inputs).toMatchObject({
      amiType: "AL2023_x86_64_NVIDIA",
      instanceTypes: ["g6.2xlarge"],
      labels: { "gpufleet.io/pool": "l4" },
      taints: [{ key: "nvidia.com/gpu", value: "present", effect: "NO_SCHEDULE" }],
      scalingConfig: { minSize: 1, desiredSize: 1, maxSize: 2 },
    });
    const awsProvider = mocks.named("pulumi:providers:aws", "aws-us-east-1-aws");
    expect(awsProvider.inputs.region).toBe("us-east-1");
    expect(
      mocks.ofType("aws:ec2/subnet:Subnet").filter((subnet) => subnet.name.startsWith("aws-us-east-1-")),
    ).toHaveLength(4);

    // gpufleet on both clusters, watching the model namespace, through each cluster's own provider.
    const releases = mocks
      .ofType("kubernetes:helm.sh/v3:Release")
      .filter((release) => release.name.endsWith("-gpufleet-operator"));
    expect(releases.map((release) => release.name).sort()).toEqual([
      "aws-us-east-1-gpufleet-operator",
      "gcp-europe-north1-gpufleet-operator",
    ]);
    for (const release of releases) {
      expect(release.inputs.values).toEqual({
        watchNamespaces: ["models"],
        replicaCount: 1,
        leaderElection: { enabled: false },
      });
      expect(release.inputs.namespace).toBe("gpufleet-system");
    }
    expect(
      mocks
        .ofType("pulumi:providers:kubernetes")
        .map((provider) => provider.name)
        .sort(),
    ).toEqual(["aws-us-east-1-k8s", "gcp-europe-north1-k8s"]);

    // The ModelDeployments: pinned to the placed GPU (GFD label) and floored at the placed replicas.
    const mdType = "kubernetes:gpufleet.io/v1alpha1:ModelDeployment";
    const llamaEurope = mocks.named(mdType, "gcp-europe-north1-gpufleet-md-llama-8b");
    expect(llamaEurope.inputs.spec.gpu).toEqual({ products: ["NVIDIA-L4"] });
    expect(llamaEurope.inputs.spec.autoscaling).toEqual({ enabled: true, minReplicas: 2, maxReplicas: 8 });
    const llamaUs = mocks.named(mdType, "aws-us-east-1-gpufleet-md-llama-8b");
    expect(llamaUs.inputs.spec.autoscaling).toEqual({ enabled: true, minReplicas: 1, maxReplicas: 8 });
    const llama70 = mocks.named(mdType, "gcp-europe-north1-gpufleet-md-llama-70b");
    expect(llama70.inputs.spec).toMatchObject({ gpu: { products: ["NVIDIA-H100-80GB-HBM3"] }, replicas: 1 });
    expect(llama70.inputs.metadata.annotations).toMatchObject({
      "gpufleet.io/placement-strategy": "carbon-aware",
      "gpufleet.io/placed-replicas": "1",
    });

    expect(Object.keys(kubeconfigs).sort()).toEqual(["aws-us-east-1", "gcp-europe-north1"]);
    expect(JSON.parse(kubeconfigs["gcp-europe-north1"]!).clusters[0].cluster.server).toBe(
      "https://gke.example.invalid",
    );
  }, 60_000);

  it("reads intensities through the configured carbon source: a live provider without its key in the environment is refused before anything is created", async () => {
    const saved = process.env.GPUFLEET_ELECTRICITYMAPS_TOKEN;
    delete process.env.GPUFLEET_ELECTRICITYMAPS_TOKEN;
    try {
      await expect(fleetProgram({ ...config, carbon: { provider: "electricitymaps" } })).rejects.toThrow(
        /set GPUFLEET_ELECTRICITYMAPS_TOKEN/,
      );
    } finally {
      if (saved !== undefined) process.env.GPUFLEET_ELECTRICITYMAPS_TOKEN = saved;
    }
  });
});
