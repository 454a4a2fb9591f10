import { placeFleet, RttTable } from "./index.js";
const rtt = RttTable.fromRecord({
  A: { "zone:A": 5, "zone:B": 30, "zone:C": 80 },
  B: { "zone:B": 5, "zone:C": 40 },
});
const res = await placeFleet({
  latencyTargetMs: 50,
  rtt,
  regions: [
    {
      region: "zone:A",
      gCO2PerKWh: 400,
      offers: [{ gpuProduct: "nvidia-l4", quotaGpus: 8, pricePerGpuHour: 1 }],
    },
    {
      region: "zone:B",
      gCO2PerKWh: 100,
      offers: [{ gpuProduct: "nvidia-l4", quotaGpus: 4, pricePerGpuHour: 2 }],
    },
    {
      region: "zone:C",
      gCO2PerKWh: 10,
      offers: [{ gpuProduct: "nvidia-l4", quotaGpus: 8, pricePerGpuHour: 1.5 }],
    },
  ],
  models: [
    {
      name: "m",
      replicaShapes: [{ gpuProduct: "nvidia-l4", gpusPerReplica: 1, tokensPerSecondPerReplica: 100 }],
      demand: [
        { origin: "A", tokensPerSecond: 450 },
        { origin: "B", tokensPerSecond: 100 },
      ],
    },
  ],
});
console.log(JSON.stringify(res, null, 1));
