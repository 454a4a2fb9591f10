import { describe, expect, it } from "vitest";
import { prng } from "../../sim/prng.js";
import type { CarbonIntensitySource } from "../carbon/types.js";
import { placeFleet, placeWithStrategy } from "./place.js";
import { RttTable } from "./rtt.js";
import {
  PlacementInfeasibleError,
  type FleetPlacement,
  type PlacementInput,
  type PlacementPlan,
} from "./types.js";


const GPU = "nvidia-l4";
const TOKENS_PER_REPLICA = 100;

interface RegionSpec {
  name: string;
  quotaReplicas: number;
  price: number;
  intensity: number;
  pue: number;
  rttFrom: Record<string, number>;
}

interface Instance {
  regions: RegionSpec[];
  demand: Record<string, number>;
  minRegions: number;
  latencyTargetMs: number;
  costCap?: number;
  boardPowerW: number;
  idlePowerW: number;
}

function randomInstance(seed: number, origins: string[], constantPower: boolean): Instance {
  const random = prng(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));
  const regions = ["R1", "R2", "R3"].map((name) => ({
    name,
    quotaReplicas: int(0, 4),
    price: int(1, 3),
    intensity: int(10, 600),
    pue: 1 + int(0, 5) / 10,
    rttFrom: Object.fromEntries(origins.map((o) => [o, int(5, 120)])),
  }));
  const demand = Object.fromEntries(origins.map((o) => [o, int(0, 30) * 10]));
  return {
    regions,
    demand,
    minRegions: int(1, 2),
    latencyTargetMs: 60,
    costCap: random() < 0.3 ? int(2, 8) : undefined,
    boardPowerW: 72,
    idlePowerW: constantPower ? 72 : 20,
  };
}

function toInput(instance: Instance): PlacementInput {
  const record: Record<string, Record<string, number>> = {};
  for (const region of instance.regions) {
    for (const [origin, ms] of Object.entries(region.rttFrom)) {
      record[origin] = { ...record[origin], [`zone:${region.name}`]: ms };
    }
  }
  return {
    latencyTargetMs: instance.latencyTargetMs,
    rtt: RttTable.fromRecord(record),
    minRegionsPerModel: instance.minRegions,
    costCapPerHour: instance.costCap,
    gpuPower: { [GPU]: { boardPowerW: instance.boardPowerW, idlePowerW: instance.idlePowerW } },
    regions: instance.regions.map((r) => ({
      region: `zone:${r.name}`,
      gCO2PerKWh: r.intensity,
      pue: r.pue,
      offers: [{ gpuProduct: GPU, quotaGpus: r.quotaReplicas, pricePerGpuHour: r.price }],
    })),
    models: [
      {
        name: "chat",
        replicaShapes: [
          { gpuProduct: GPU, gpusPerReplica: 1, tokensPerSecondPerReplica: TOKENS_PER_REPLICA },
        ],
        demand: Object.entries(instance.demand).map(([origin, tokensPerSecond]) => ({
          origin,
          tokensPerSecond,
        })),
      },
    ],
  };
}

interface BruteForceOptimum {
  emissions: number;
  cost: number;
  meanRtt: number;
}

const reachable = (instance: Instance, region: RegionSpec, origin: string): boolean =>
  (region.rttFrom[origin] ?? Infinity) <= instance.latencyTargetMs;

/**
 * Enumerates every replica vector within quota. Routing feasibility is Hall's condition for the
 * transportation problem; with one origin the optimal routing for emissions (or latency) is to fill
 * regions in ascending order of marginal emissions (or RTT), which is exact for a single source.
 */
function bruteForce(instance: Instance): BruteForceOptimum | undefined {
  const origins = Object.keys(instance.demand).filter((o) => (instance.demand[o] ?? 0) > 0);
  const usable = instance.regions.map(
    (r) => origins.length === 0 || origins.some((o) => reachable(instance, r, o)),
  );
  let best: BruteForceOptimum | undefined;
  const counts = instance.regions.map(() => 0);
  const visit = (index: number): void => {
    if (index < instance.regions.length) {
      const region = instance.regions[index] as RegionSpec;
      const max = usable[index] ? region.quotaReplicas : 0;
      for (let n = 0; n <= max; n++) {
        counts[index] = n;
        visit(index + 1);
      }
      return;
    }
    const used = counts.filter((n) => n > 0).length;
    if (used < instance.minRegions) return;
    const cost = instance.regions.reduce((sum, r, i) => sum + (counts[i] ?? 0) * r.price, 0);
    if (instance.costCap !== undefined && cost > instance.costCap + 1e-9) return;
    for (let mask = 1; mask < 1 << origins.length; mask++) {
      const subset = origins.filter((_, i) => mask & (1 << i));
      const need = subset.reduce((sum, o) => sum + (instance.demand[o] ?? 0), 0);
      const supply = instance.regions.reduce(
        (sum, r, i) =>
          sum + (subset.some((o) => reachable(instance, r, o)) ? (counts[i] ?? 0) * TOKENS_PER_REPLICA : 0),
        0,
      );
      if (need > supply + 1e-9) return;
    }
    const kWhFactor = (r: RegionSpec): number => (r.pue * r.intensity) / 1000;
    let emissions = instance.regions.reduce(
      (sum, r, i) => sum + (counts[i] ?? 0) * instance.idlePowerW * kWhFactor(r),
      0,
    );
    let meanRtt = 0;
    if (origins.length === 1) {
      const origin = origins[0] as string;
      const dynamic = (r: RegionSpec): number =>
        ((instance.boardPowerW - instance.idlePowerW) * kWhFactor(r)) / TOKENS_PER_REPLICA;
      const fill = (key: (r: RegionSpec) => number): number => {
        let left = instance.demand[origin] ?? 0;
        let total = 0;
        const order = instance.regions
          .map((r, i) => ({ r, i }))
          .filter(({ r }) => reachable(instance, r, origin));
        order.sort((a, b) => key(a.r) - key(b.r));
        for (const { r, i } of order) {
          const take = Math.min(left, (counts[i] ?? 0) * TOKENS_PER_REPLICA);
          total += take * key(r);
          left -= take;
        }
        return total;
      };
      emissions += fill(dynamic);
      meanRtt = fill((r) => r.rttFrom[origin] ?? 0) / (instance.demand[origin] ?? 1);
    } else if (instance.boardPowerW !== instance.idlePowerW) {
      throw new Error("brute force handles load-proportional power for one origin only");
    }
    best = {
      emissions: Math.min(best?.emissions ?? Infinity, emissions),
      cost: Math.min(best?.cost ?? Infinity, cost),
      meanRtt: Math.min(best?.meanRtt ?? Infinity, meanRtt),
    };
  };
  visit(0);
  return best;
}

/** Independent check that a plan honours every constraint of the instance. */
function expectPlanFeasible(plan: PlacementPlan, input: PlacementInput): void {
  const rtt = input.rtt as RttTable;
  for (const route of plan.routes) {
    expect(rtt.rttMs(route.origin, route.region), `${route.origin}→${route.region}`).toBeLessThanOrEqual(
      input.latencyTargetMs,
    );
  }
  for (const model of input.models) {
    for (const d of model.demand) {
      const routed = plan.routes
        .filter((r) => r.model === model.name && r.origin === d.origin)
        .reduce((s, r) => s + r.tokensPerSecond, 0);
      expect(routed).toBeCloseTo(d.tokensPerSecond ?? 0, 3);
    }
    expect(plan.regionsPerModel[model.name]?.length ?? 0).toBeGreaterThanOrEqual(
      model.minRegions ?? input.minRegionsPerModel ?? 1,
    );
  }
  for (const region of input.regions) {
    for (const offer of region.offers) {
      const gpus = plan.replicas
        .filter((p) => p.region === region.region && p.gpuProduct === offer.gpuProduct)
        .reduce((s, p) => s + p.gpus, 0);
      expect(gpus).toBeLessThanOrEqual(offer.quotaGpus);
    }
  }
  for (const placement of plan.replicas) {
    const shape = input.models
      .find((m) => m.name === placement.model)
      ?.replicaShapes.find((s) => s.gpuProduct === placement.gpuProduct);
    const served = plan.routes
      .filter(
        (r) =>
          r.model === placement.model &&
          r.region === placement.region &&
          r.gpuProduct === placement.gpuProduct,
      )
      .reduce((s, r) => s + r.tokensPerSecond, 0);
    expect(served).toBeLessThanOrEqual(
      placement.replicas * (shape?.tokensPerSecondPerReplica ?? 0) * (input.maxUtilization ?? 1) + 1e-6,
    );
  }
  if (input.costCapPerHour !== undefined)
    expect(plan.costPerHour).toBeLessThanOrEqual(input.costCapPerHour + 1e-9);
}

async function placeOrInfeasible(input: PlacementInput): Promise<FleetPlacement | PlacementInfeasibleError> {
  try {
    return await placeFleet(input);
  } catch (error) {
    if (error instanceof PlacementInfeasibleError) return error;
    throw error;
  }
}

describe("placeFleet against brute-force enumeration", () => {
  it("matches the least emissions and least cost on 30 random two-origin instances with constant power", async () => {
    let feasible = 0;
    for (let seed = 1; seed <= 30; seed++) {
      const instance = randomInstance(seed, ["O1", "O2"], true);
      const input = toInput(instance);
      const expected = bruteForce(instance);
      const result = await placeOrInfeasible(input);
      if (expected === undefined) {
        expect(result, `seed ${seed}`).toBeInstanceOf(PlacementInfeasibleError);
        continue;
      }
      feasible++;
      if (result instanceof PlacementInfeasibleError)
        throw new Error(`seed ${seed}: unexpected infeasible: ${result.message}`);
      expect(result.carbonAware.emissionsGramsPerHour, `seed ${seed}`).toBeCloseTo(expected.emissions, 6);
      expect(result.cheapest.costPerHour, `seed ${seed}`).toBeCloseTo(expected.cost, 6);
      for (const plan of [result.carbonAware, result.cheapest, result.nearest])
        expectPlanFeasible(plan, input);
      expect(result.cheapest.emissionsGramsPerHour).toBeGreaterThanOrEqual(
        result.carbonAware.emissionsGramsPerHour - 1e-6,
      );
      expect(result.nearest.emissionsGramsPerHour).toBeGreaterThanOrEqual(
        result.carbonAware.emissionsGramsPerHour - 1e-6,
      );
    }
    // The generator must exercise both outcomes for the comparison to mean anything.
    expect(feasible).toBeGreaterThan(5);
    expect(feasible).toBeLessThan(30);
  }, 120_000);

  it("matches the least emissions and the nearest routing on 20 one-origin instances with load-proportional power", async () => {
    let compared = 0;
    for (let seed = 101; seed <= 120; seed++) {
      const instance = randomInstance(seed, ["O1"], false);
      const input = toInput(instance);
      const expected = bruteForce(instance);
      const result = await placeOrInfeasible(input);
      if (expected === undefined) {
        expect(result, `seed ${seed}`).toBeInstanceOf(PlacementInfeasibleError);
        continue;
      }
      if (result instanceof PlacementInfeasibleError)
        throw new Error(`seed ${seed}: unexpected infeasible: ${result.message}`);
      compared++;
      expect(result.carbonAware.emissionsGramsPerHour, `seed ${seed}`).toBeCloseTo(expected.emissions, 6);
      expect(result.nearest.meanRttMs, `seed ${seed}`).toBeCloseTo(expected.meanRtt, 6);
      expectPlanFeasible(result.carbonAware, input);
    }
    expect(compared).toBeGreaterThan(5);
  }, 120_000);
});

/** Two regions: Dirty is near the users, Clean is 80 ms away and cheaper per tonne but pricier per hour. */
function twoRegionInput(overrides: Partial<PlacementInput> = {}): PlacementInput {
  return {
    latencyTargetMs: 100,
    rtt: RttTable.fromRecord({ Users: { "zone:Dirty": 10, "zone:Clean": 80, "zone:Far": 250 } }),
    gpuPower: { [GPU]: { boardPowerW: 72, idlePowerW: 20 } },
    regions: [
      {
        region: "zone:Dirty",
        gCO2PerKWh: 700,
        offers: [{ gpuProduct: GPU, quotaGpus: 8, pricePerGpuHour: 1 }],
      },
      {
        region: "zone:Clean",
        gCO2PerKWh: 20,
        offers: [{ gpuProduct: GPU, quotaGpus: 8, pricePerGpuHour: 2 }],
      },
    ],
    models: [
      {
        name: "chat",
        replicaShapes: [
          { gpuProduct: GPU, gpusPerReplica: 1, tokensPerSecondPerReplica: TOKENS_PER_REPLICA },
        ],
        demand: [{ origin: "Users", tokensPerSecond: 350 }],
      },
    ],
    ...overrides,
  };
}

describe("placeFleet constraints", () => {
  it("sends traffic to the clean region when it is within the latency target, and keeps it near when it is not", async () => {
    const relaxed = await placeFleet(twoRegionInput({ latencyTargetMs: 100 }));
    expect(relaxed.carbonAware.regionsPerModel.chat).toEqual(["zone:Clean"]);
    expect(relaxed.cheapest.regionsPerModel.chat).toEqual(["zone:Dirty"]);
    expect(relaxed.comparison.emissionsReductionVsCheapestPct).toBeGreaterThan(90);
    expect(relaxed.carbonAware.meanRttMs).toBe(80);

    const tight = await placeFleet(twoRegionInput({ latencyTargetMs: 50 }));
    expect(tight.carbonAware.routes.every((r) => r.rttMs <= 50)).toBe(true);
    expect(tight.carbonAware.regionsPerModel.chat).toEqual(["zone:Dirty"]);
    expect(tight.carbonAware.replicas).toEqual([
      { model: "chat", region: "zone:Dirty", gpuProduct: GPU, replicas: 4, gpus: 4 },
    ]);
  });

  it("places every model in at least the required number of regions", async () => {
    const result = await placeFleet(twoRegionInput({ minRegionsPerModel: 2 }));
    for (const plan of [result.carbonAware, result.cheapest, result.nearest]) {
      expect([...(plan.regionsPerModel.chat ?? [])].sort()).toEqual(["zone:Clean", "zone:Dirty"]);
    }
    // The standby in the dirty region is one replica; the traffic still goes to the clean one.
    expect(result.carbonAware.replicas.find((p) => p.region === "zone:Dirty")?.replicas).toBe(1);
  });

  it("converts requests per second with the model's tokens per request", async () => {
    const input = twoRegionInput();
    input.models[0] = {
      ...(input.models[0] as PlacementInput["models"][number]),
      demand: [{ origin: "Users", requestsPerSecond: 2 }],
      tokensPerRequest: 150,
    };
    const plan = await placeWithStrategy(input, "cheapest");
    expect(plan.demandTokensPerSecond).toBe(300);
    expect(plan.replicas).toEqual([
      { model: "chat", region: "zone:Dirty", gpuProduct: GPU, replicas: 3, gpus: 3 },
    ]);
  });

  it("respects a cost cap by trading emissions for cost", async () => {
    const uncapped = await placeFleet(twoRegionInput());
    expect(uncapped.carbonAware.costPerHour).toBe(8);
    const capped = await placeFleet(twoRegionInput({ costCapPerHour: 6 }));
    expect(capped.carbonAware.costPerHour).toBeLessThanOrEqual(6);
    expect(capped.carbonAware.emissionsGramsPerHour).toBeGreaterThan(
      uncapped.carbonAware.emissionsGramsPerHour,
    );
  });
});

describe("placeFleet infeasible inputs", () => {
  async function failure(input: PlacementInput): Promise<PlacementInfeasibleError> {
    const result = await placeOrInfeasible(input);
    if (!(result instanceof PlacementInfeasibleError)) throw new Error("expected an infeasible placement");
    return result;
  }

  it("names the latency target and the origin that no region can reach", async () => {
    const input = twoRegionInput();
    input.models[0]?.demand.push({ origin: "Far", tokensPerSecond: 10 });
    input.rtt = RttTable.fromRecord({
      Users: { "zone:Dirty": 10, "zone:Clean": 80 },
      Far: { "zone:Dirty": 250, "zone:Clean": 180 },
    });
    const error = await failure(input);
    expect(error.bindingConstraints).toEqual(["latency"]);
    expect(error.message).toMatch(
      /users at Far but no candidate region within 100 ms \(nearest candidate zone:Clean is 180 ms away\)/,
    );
  });

  it("names the GPU quota when the reachable quota cannot carry the demand", async () => {
    const input = twoRegionInput({ latencyTargetMs: 50 });
    input.models[0] = {
      ...(input.models[0] as PlacementInput["models"][number]),
      demand: [{ origin: "Users", tokensPerSecond: 900 }],
    };
    const error = await failure(input);
    expect(error.bindingConstraints).toEqual(["gpu-quota"]);
    expect(error.message).toMatch(
      /needs 900 tokens\/s but the GPU quota of regions within 50 ms of its users serves at most 800 tokens\/s/,
    );
  });

  it("names redundancy when too few regions are within reach", async () => {
    const error = await failure(twoRegionInput({ latencyTargetMs: 50, minRegionsPerModel: 2 }));
    expect(error.bindingConstraints).toEqual(["redundancy"]);
    expect(error.message).toMatch(
      /must run in 2 regions but only 1 candidate regions within 50 ms .*\(zone:Dirty\)/,
    );
  });

  it("names the cost cap and the cheapest cost that meets everything else", async () => {
    const error = await failure(twoRegionInput({ costCapPerHour: 3 }));
    expect(error.bindingConstraints).toEqual(["cost-cap"]);
    expect(error.message).toMatch(
      /cheapest placement meeting every other constraint costs 4\/h, above the cap of 3\/h/,
    );
  });

  it("finds shared GPU quota binding when each model fits alone but not together", async () => {
    const input = twoRegionInput({ latencyTargetMs: 50 });
    const base = input.models[0] as PlacementInput["models"][number];
    input.models = [
      { ...base, name: "a", demand: [{ origin: "Users", tokensPerSecond: 500 }] },
      { ...base, name: "b", demand: [{ origin: "Users", tokensPerSecond: 500 }] },
    ];
    const error = await failure(input);
    // Either more quota nearby or a looser latency target (reaching the clean region's quota) would do.
    expect(error.bindingConstraints).toEqual(["gpu-quota", "latency"]);
    expect(error.message).toMatch(/relaxing any one of these alone makes a placement exist/);
    expect(error.message).toMatch(/need more GPUs than the quotas of regions within 50 ms allow/);
    expect(error.message).toMatch(/latency target above 50 ms/);
  });
});

describe("placeFleet carbon intensities", () => {
  it("asks the carbon source for regions without a figure, using the forecast window, and reports fallbacks", async () => {
    const asked: string[] = [];
    const source: CarbonIntensitySource = {
      name: "stub",
      intensity: () => Promise.reject(new Error("forecastAverage should be used when a window is given")),
      forecastAverage: (region, window) => {
        asked.push(`${region}@${window.start.toISOString()}`);
        return Promise.resolve(
          region === "zone:Clean"
            ? { gCO2PerKWh: 20, source: "stub-forecast", asOf: "2025-11-27", kind: "forecast-average" }
            : {
                gCO2PerKWh: 700,
                source: "static",
                asOf: "2025",
                kind: "yearly-average",
                fallbackReason: "stub: HTTP 503",
              },
        );
      },
    };
    const base = twoRegionInput();
    const input: PlacementInput = {
      ...base,
      regions: base.regions.map(({ gCO2PerKWh: _omitted, ...rest }) => rest),
      carbonSource: source,
      carbonWindow: { start: new Date("2025-11-27T00:00:00Z"), end: new Date("2025-11-28T00:00:00Z") },
    };
    const result = await placeFleet(input);
    expect(asked).toEqual(["zone:Dirty@2025-11-27T00:00:00.000Z", "zone:Clean@2025-11-27T00:00:00.000Z"]);
    expect(result.intensities["zone:Clean"]?.source).toBe("stub-forecast");
    expect(result.carbonAware.regionsPerModel.chat).toEqual(["zone:Clean"]);
    expect(result.warnings).toEqual(["zone:Dirty: carbon intensity from fallback (stub: HTTP 503)"]);
  });
});
