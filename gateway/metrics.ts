import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { PICK_REASONS } from "./routing/types.js";

/**
 * The gateway's Prometheus metrics, served at /metrics on the ops port. Label values are bounded: a
 * `model` label only ever carries the name of a ModelDeployment the gateway routes to ("" otherwise),
 * never a string a client sent.
 */
export interface GatewayMetrics {
  registry: Registry;
  requests: Counter<"model" | "code">;
  picks: Counter<"reason">;
  held: Gauge<"model">;
  holdOutcomes: Counter<"outcome">;
  inFlight: Gauge<never>;
  upstreamErrors: Counter<"kind">;
  duration: Histogram<"model" | "stream">;
  timeToFirstByte: Histogram<"model">;
  demandWrites: Counter<"result">;
}

export function createGatewayMetrics(
  registry: Registry = new Registry(),
  options: { processMetrics?: boolean } = {},
): GatewayMetrics {
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const metrics: GatewayMetrics = {
    registry,
    requests: new Counter({
      name: "gpufleet_gateway_requests_total",
      help: "Requests answered, by model (a routed ModelDeployment's model name, or empty) and HTTP status.",
      labelNames: ["model", "code"],
      registers,
    }),
    picks: new Counter({
      name: "gpufleet_gateway_picks_total",
      help: "Endpoint picks, by the reason the picker gave.",
      labelNames: ["reason"],
      registers,
    }),
    held: new Gauge({
      name: "gpufleet_gateway_held_requests",
      help: "Requests held waiting for a ready pod, by model.",
      labelNames: ["model"],
      registers,
    }),
    holdOutcomes: new Counter({
      name: "gpufleet_gateway_hold_outcomes_total",
      help: "Held requests by how their wait ended: released, timeout (503), cancelled (client left), refused (429).",
      labelNames: ["outcome"],
      registers,
    }),
    inFlight: new Gauge({
      name: "gpufleet_gateway_upstream_in_flight",
      help: "Requests sent to engine pods and not yet finished.",
      registers,
    }),
    upstreamErrors: new Counter({
      name: "gpufleet_gateway_upstream_errors_total",
      help: "Upstream failures: connect, timeout, disconnected mid-response, redirect refused, wrong_model (the engine does not serve the model).",
      labelNames: ["kind"],
      registers,
    }),
    duration: new Histogram({
      name: "gpufleet_gateway_request_duration_seconds",
      help: "Time from a request's arrival to the end of its answer, by model and streaming.",
      labelNames: ["model", "stream"],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    }),
    timeToFirstByte: new Histogram({
      name: "gpufleet_gateway_time_to_first_byte_seconds",
      help: "Time from a request's arrival to the first body byte sent back (the first token when streaming), holding included.",
      labelNames: ["model"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    }),
    demandWrites: new Counter({
      name: "gpufleet_gateway_demand_writes_total",
      help: "Demand annotation writes to ModelDeployments, by result.",
      labelNames: ["result"],
      registers,
    }),
  };
  for (const reason of PICK_REASONS) metrics.picks.inc({ reason }, 0);
  return metrics;
}
