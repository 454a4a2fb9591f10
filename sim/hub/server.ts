/**
 * A small Hugging Face Hub-shaped HTTP server on loopback, for tests and the local cluster: it serves
 * `/{org}/{name}/resolve/{revision}/{file}` from real config.json files (operator/planner/testdata/
 * hf-configs/, one `org--name.json` per repo), plus what a test sets up: safetensors index totals,
 * single-file safetensors headers, private repos, extra revisions, and an outage or slowness switch.
 */
import { readdirSync, readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export const HF_CONFIG_DIR = new URL("../../operator/planner/testdata/hf-configs/", import.meta.url);

export type HubMode = "up" | "down" | "slow";

export interface SimHubOptions {
  /** Repo -> config.json object; default: every file of HF_CONFIG_DIR, served at revision main. */
  configs?: ReadonlyMap<string, unknown>;
  /** Repo -> metadata.total_size served as model.safetensors.index.json. */
  indexTotals?: ReadonlyMap<string, number>;
  /** Repo -> tensor byte sizes served as a single model.safetensors header (no index for these). */
  singleFileTensors?: ReadonlyMap<string, readonly number[]>;
  /** Repos that answer 401 unless `Authorization: Bearer <token>` matches. */
  privateRepos?: ReadonlyMap<string, string>;
  /** How long `slow` mode holds each answer. */
  slowMs?: number;
}

export interface SimHub {
  url: string;
  /** Requests seen, as `METHOD path` (bounded to the last 1,000). */
  readonly requests: string[];
  setMode(mode: HubMode): void;
  /** Serves `config` for repo at `revision` (a new commit or branch state). */
  setRevision(repo: string, revision: string, config: unknown): void;
  close(): Promise<void>;
}

/** Every collected config.json, keyed by Hugging Face repo id. */
export function collectedConfigs(): Map<string, unknown> {
  const configs = new Map<string, unknown>();
  for (const file of readdirSync(HF_CONFIG_DIR)) {
    if (!file.endsWith(".json")) continue;
    const repo = file.replace(/\.json$/, "").replace("--", "/");
    configs.set(repo, JSON.parse(readFileSync(new URL(file, HF_CONFIG_DIR), "utf8")));
  }
  return configs;
}

function safetensorsFile(sizes: readonly number[]): Buffer {
  const header: Record<string, unknown> = {};
  let offset = 0;
  sizes.forEach((size, i) => {
    header[`model.layers.${i}.weight`] = {
      dtype: "BF16",
      shape: [size / 2],
      data_offsets: [offset, offset + size],
    };
    offset += size;
  });
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  // The data itself is not served: a range past the header is answered with zeros of the right length.
  return Buffer.concat([length, json]);
}

export async function startSimHub(options: SimHubOptions = {}): Promise<SimHub> {
  const configs = new Map<string, Map<string, unknown>>();
  for (const [repo, config] of options.configs ?? collectedConfigs())
    configs.set(repo, new Map([["main", config]]));
  let mode: HubMode = "up";
  const requests: string[] = [];
  const slowMs = options.slowMs ?? 30_000;
  const pendingTimers = new Set<NodeJS.Timeout>();

  const answer = (request: IncomingMessage, response: ServerResponse): void => {
    const path = new URL(request.url ?? "/", "http://127.0.0.1").pathname;
    requests.push(`${request.method} ${path}`);
    if (requests.length > 1000) requests.shift();
    if (mode === "down") {
      response.writeHead(503, { "content-type": "text/plain" }).end("hub is down");
      return;
    }
    const match = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/([^/]+)$/.exec(path);
    if (request.method !== "GET" || !match) {
      response.writeHead(404).end();
      return;
    }
    const [, repo = "", rawRevision = "", file = ""] = match;
    const revision = decodeURIComponent(rawRevision);
    const secret = options.privateRepos?.get(repo);
    if (secret !== undefined && request.headers.authorization !== `Bearer ${secret}`) {
      response
        .writeHead(401, { "content-type": "application/json" })
        .end(JSON.stringify({ error: "Access to this repository is restricted" }));
      return;
    }
    const config = configs.get(repo)?.get(revision);
    if (config === undefined) {
      response
        .writeHead(404, { "content-type": "application/json" })
        .end(JSON.stringify({ error: "Repository or revision not found" }));
      return;
    }
    const json = (body: unknown) => {
      const bytes = Buffer.from(JSON.stringify(body));
      response
        .writeHead(200, { "content-type": "application/json", "content-length": bytes.length })
        .end(bytes);
    };
    if (file === "config.json") return json(config);
    const total = options.indexTotals?.get(repo);
    if (file === "model.safetensors.index.json" && total !== undefined)
      return json({ metadata: { total_size: total }, weight_map: {} });
    const tensors = options.singleFileTensors?.get(repo);
    if (file === "model.safetensors" && tensors !== undefined) {
      const bytes = safetensorsFile(tensors);
      const range = /^bytes=(\d+)-(\d+)$/.exec(request.headers.range ?? "");
      if (!range) {
        response.writeHead(200, { "content-length": bytes.length }).end(bytes);
        return;
      }
      const start = Number(range[1]);
      const end = Math.min(Number(range[2]), bytes.length - 1);
      const slice = bytes.subarray(start, end + 1);
      response
        .writeHead(206, { "content-length": slice.length, "content-range": `bytes ${start}-${end}/*` })
        .end(slice);
      return;
    }
    response
      .writeHead(404, { "content-type": "application/json" })
      .end(JSON.stringify({ error: "Entry not found" }));
  };

  const server: Server = createServer((request, response) => {
    if (mode === "slow") {
      const timer = setTimeout(() => {
        pendingTimers.delete(timer);
        answer(request, response);
      }, slowMs);
      pendingTimers.add(timer);
      return;
    }
    answer(request, response);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    setMode(next) {
      mode = next;
    },
    setRevision(repo, revision, config) {
      const revisions = configs.get(repo) ?? new Map<string, unknown>();
      revisions.set(revision, config);
      configs.set(repo, revisions);
    },
    async close() {
      for (const timer of pendingTimers) clearTimeout(timer);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
