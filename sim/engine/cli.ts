/**
 * Runs one simulated engine until interrupted, for manual runs of the load generator:
 *
 *   npx tsx sim/engine/cli.ts --host 127.1.0.5 --port 8000 --engine vllm \
 *     --model llama-3.1-8b --gpu NVIDIA-H100-80GB-HBM3 [--served-model-name NAME] [--load-delay 2] \
 *     [--scheduling-policy priority]
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { engineParamsForNames } from "./model.js";
import { type SimEngineKind, startEngineServer } from "./server.js";

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "8000" },
      engine: { type: "string", default: "vllm" },
      model: { type: "string", default: "llama-3.1-8b" },
      gpu: { type: "string", default: "NVIDIA-H100-80GB-HBM3" },
      "served-model-name": { type: "string" },
      "load-delay": { type: "string", default: "0" },
      "scheduling-policy": { type: "string", default: "fcfs" },
    },
  });
  const engine = values.engine as SimEngineKind;
  if (engine !== "vllm" && engine !== "tensorrt-llm" && engine !== "sglang")
    throw new Error("--engine must be vllm, tensorrt-llm or sglang");
  const schedulingPolicy = values["scheduling-policy"];
  if (schedulingPolicy !== "fcfs" && schedulingPolicy !== "priority")
    throw new Error("--scheduling-policy must be fcfs or priority");
  const model = values.model ?? "llama-3.1-8b";
  const server = await startEngineServer({
    host: values.host ?? "127.0.0.1",
    port: Number(values.port),
    engine,
    modelName: values["served-model-name"] ?? model,
    params: engineParamsForNames(model, values.gpu ?? "NVIDIA-H100-80GB-HBM3"),
    loadDelayMs: Number(values["load-delay"]) * 1000,
    schedulingPolicy,
  });
  process.stderr.write(`simulated ${engine} engine for ${model} on ${server.url}\n`);
  const stop = () => {
    void server.close().then(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`engine: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  });
}
