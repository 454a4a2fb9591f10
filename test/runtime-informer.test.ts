import http from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Informer } from "../operator/runtime/informer.js";
import { KubeApiError, KubeClient, pathFor, type KubeObject } from "../operator/runtime/kube-client.js";
import { testKubeConfig, uniqueNamespace, waitFor, type TestNamespace } from "./support/kube.js";

// The runtime informer against the real kube-apiserver: it follows ConfigMap create/update/delete, and a
// forced relist (its watch ended with a 410 after it missed changes) reports the deletions that happened
// while it was not watching.

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

const LABEL = "gpufleet.io/informer-test";

describe("Informer on the real API server", () => {
  let ns: TestNamespace;
  let client: KubeClient;
  let informer: Informer<ConfigMap>;
  const seen: string[] = [];

  const cm = (name: string, value: string): ConfigMap & { apiVersion: string; kind: string } => ({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name, namespace: ns.name, labels: { [LABEL]: "yes" } },
    data: { value },
  });
  const cmPath = (name: string) => pathFor({ apiVersion: "v1", kind: "ConfigMap", namespace: ns.name, name });

  beforeAll(async () => {
    const kubeConfig = testKubeConfig();
    ns = await uniqueNamespace(kubeConfig, "informer");
    client = new KubeClient(kubeConfig);
    informer = new Informer<ConfigMap>(client, {
      apiVersion: "v1",
      kind: "ConfigMap",
      namespaces: [ns.name],
      labelSelector: `${LABEL}=yes`,
      watchTimeoutSeconds: 60,
      backoff: { baseDelayMs: 100, maxDelayMs: 1000 },
    });
    informer
      .onAdd((o) => seen.push(`add ${o.metadata?.name}=${o.data?.value}`))
      .onUpdate((_old, o) => seen.push(`update ${o.metadata?.name}=${o.data?.value}`))
      .onDelete((o, info) =>
        seen.push(`delete ${o.metadata?.name}${info.finalStateUnknown ? " (relist)" : ""}`),
      );
  });

  afterAll(async () => {
    await informer?.stop();
    client?.close();
    await ns?.delete();
  });

  it("lists what exists, then sees create, update and delete of ConfigMaps", async () => {
    await client.create(cm("before", "1"));
    await client.create({ ...cm("unlabelled", "x"), metadata: { name: "unlabelled", namespace: ns.name } });
    informer.start();
    await informer.waitForSync(30_000);
    expect(seen).toEqual(["add before=1"]);
    expect(informer.get(ns.name, "before")?.kind).toBe("ConfigMap");

    await client.create(cm("live", "1"));
    await client.apply(cm("live", "2"));
    await client.delete(cmPath("live"));
    await waitFor(() => seen.length === 4, { timeoutMs: 20_000, description: "watch events for cm live" });
    expect(seen.slice(1)).toEqual(["add live=1", "update live=2", "delete live"]);
    expect(informer.list().map((o) => o.metadata?.name)).toEqual(["before"]);
    expect(informer.stats().lists).toBe(1);
  });

  it("resumes after a stop from its last resourceVersion and replays what it missed", async () => {
    seen.length = 0;
    await informer.stop();
    await client.create(cm("missed", "1"));
    await client.delete(cmPath("missed"));
    const listsBefore = informer.stats().lists;
    informer.start();
    await waitFor(() => seen.length === 2, { timeoutMs: 20_000, description: "replayed events" });
    expect(seen).toEqual(["add missed=1", "delete missed"]);
    expect(informer.stats().lists).toBe(listsBefore);
  });

  it("relists on 410 Gone without losing deletions made while it was not watching", async () => {
    // The informer talks to the real API server through a loopback proxy that can silence its watches
    // and then end them with a 410 ERROR event, as the server does when a watch falls out of its window.
    const proxy = new ExpiringWatchProxy(client);
    const port = await proxy.start();
    const proxied = new KubeClient(plainHttpKubeConfig(port));
    const relisting = new Informer<ConfigMap>(proxied, {
      apiVersion: "v1",
      kind: "ConfigMap",
      namespaces: [ns.name],
      labelSelector: `${LABEL}=yes`,
      watchTimeoutSeconds: 60,
      backoff: { baseDelayMs: 100, maxDelayMs: 1000 },
    });
    const events: string[] = [];
    relisting
      .onAdd((o) => events.push(`add ${o.metadata?.name}=${o.data?.value}`))
      .onUpdate((_old, o) => events.push(`update ${o.metadata?.name}=${o.data?.value}`))
      .onDelete((o, info) =>
        events.push(`delete ${o.metadata?.name}${info.finalStateUnknown ? " (relist)" : ""}`),
      );
    try {
      await client.create(cm("doomed", "1"));
      await client.create(cm("changed", "1"));
      relisting.start();
      await relisting.waitForSync(30_000);
      await waitFor(() => proxy.openWatches === 1, {
        timeoutMs: 10_000,
        description: "watch open through the proxy",
      });
      expect(relisting.get(ns.name, "doomed")).toBeDefined();
      events.length = 0;

      proxy.silenceWatches();
      await client.delete(cmPath("doomed"));
      await client.apply(cm("changed", "2"));
      await client.create(cm("born", "1"));
      await new Promise((r) => setTimeout(r, 500));
      expect(events).toEqual([]);

      proxy.expireWatches();
      await waitFor(() => relisting.stats().relistsAfterGone === 1 && events.length === 3, {
        timeoutMs: 30_000,
        description: "relist after 410",
      });
      expect([...events].sort()).toEqual(["add born=1", "delete doomed (relist)", "update changed=2"]);
      expect(
        relisting
          .list()
          .map((o) => o.metadata?.name)
          .sort(),
      ).toEqual(["before", "born", "changed"]);

      // It watches again after the relist.
      await client.delete(cmPath("born"));
      await waitFor(() => events.includes("delete born"), {
        timeoutMs: 20_000,
        description: "watch after relist",
      });
    } finally {
      await relisting.stop();
      proxied.close();
      await proxy.stop();
    }
  });
});

/**
 * A plain-HTTP loopback proxy to the real API server (like `kubectl proxy`, forwarding with the admin
 * client's credentials) that can silence the watches going through it and then expire them with 410.
 */
class ExpiringWatchProxy {
  private server: http.Server | undefined;
  private readonly watches = new Set<{
    res: http.ServerResponse;
    upstream: AbortController;
    silenced: boolean;
  }>();

  constructor(private readonly upstream: KubeClient) {}

  get openWatches(): number {
    return this.watches.size;
  }

  async start(): Promise<number> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", r));
    return (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    for (const w of this.watches) w.upstream.abort();
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  /** Watches stay connected but nothing more reaches them. */
  silenceWatches(): void {
    for (const w of this.watches) {
      w.silenced = true;
      w.upstream.abort();
    }
  }

  /** Every open watch gets an ERROR event with code 410 and ends. */
  expireWatches(): void {
    for (const w of [...this.watches]) {
      w.res.end(
        JSON.stringify({
          type: "ERROR",
          object: {
            kind: "Status",
            apiVersion: "v1",
            status: "Failure",
            reason: "Expired",
            code: 410,
            message: "too old resource version",
          },
        }) + "\n",
      );
      this.watches.delete(w);
    }
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const query = Object.fromEntries(url.searchParams.entries());
    if (query.watch === "true") {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.flushHeaders();
      const entry = { res, upstream: new AbortController(), silenced: false };
      this.watches.add(entry);
      res.on("close", () => {
        entry.upstream.abort();
        this.watches.delete(entry);
      });
      try {
        await this.upstream.watch(
          url.pathname,
          {
            resourceVersion: query.resourceVersion,
            allowWatchBookmarks: query.allowWatchBookmarks === "true",
            timeoutSeconds: query.timeoutSeconds ? Number(query.timeoutSeconds) : undefined,
            labelSelector: query.labelSelector,
            fieldSelector: query.fieldSelector,
          },
          (event) => {
            if (!entry.silenced) res.write(JSON.stringify(event) + "\n");
          },
          entry.upstream.signal,
        );
      } catch {
        // The client sees the stream end; it rewatches.
      }
      if (!entry.silenced && !res.writableEnded) res.end();
      return;
    }
    try {
      const body = await this.upstream.request(req.method ?? "GET", url.pathname, { query });
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify(body));
    } catch (err) {
      const status = err instanceof KubeApiError ? err.statusCode : 502;
      res.writeHead(status, { "Content-Type": "application/json" });
      res.end(
        JSON.stringify({
          kind: "Status",
          apiVersion: "v1",
          status: "Failure",
          code: status,
          reason: (err as KubeApiError).reason,
          message: (err as Error).message,
        }),
      );
    }
  }
}

function plainHttpKubeConfig(port: number): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "proxy", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: "proxy" }],
    contexts: [{ name: "proxy", cluster: "proxy", user: "proxy" }],
    currentContext: "proxy",
  });
  return kc;
}
