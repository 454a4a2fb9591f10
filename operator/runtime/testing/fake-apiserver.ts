import http from "node:http";
import type { AddressInfo } from "node:net";
import { randomUUID } from "node:crypto";
import { KubeConfig } from "@kubernetes/client-node";
import type { KubeObject, KubeStatus } from "../kube-client.js";

/**
 * An in-memory Kubernetes API server on node:http for UNIT tests of the runtime (the cluster tests in
 * test/ use the real control plane). It stores any resource under `/api/v1` or `/apis/<group>/<version>`,
 * keeps resourceVersions and a watch history, and can misbehave on demand: compact the history (a watch
 * from an older resourceVersion gets a 410 ERROR event), send 410 to open watches, drop them, stall them
 * (connected but silent), or fail the next matching requests.
 */

interface ParsedPath {
  /** `/api/v1/configmaps`: identifies the resource across namespaces. */
  resource: string;
  namespace: string | undefined;
  name: string | undefined;
  subresource: string | undefined;
}

const PATH_PATTERN =
  /^(\/api\/v1|\/apis\/[^/]+\/[^/]+)(?:\/namespaces\/([^/]+))?\/([^/]+)(?:\/([^/]+))?(?:\/(status|scale))?$/;

export function parseResourcePath(pathname: string): ParsedPath | undefined {
  const m = PATH_PATTERN.exec(pathname);
  if (!m) return undefined;
  return {
    resource: `${m[1]}/${m[3]}`,
    namespace: m[2] ? decodeURIComponent(m[2]) : undefined,
    name: m[4] ? decodeURIComponent(m[4]) : undefined,
    subresource: m[5],
  };
}

interface HistoryEntry {
  rv: number;
  type: "ADDED" | "MODIFIED" | "DELETED";
  resource: string;
  object: KubeObject;
}

interface OpenWatch {
  resource: string;
  namespace: string | undefined;
  labelSelector: string | undefined;
  bookmarks: boolean;
  res: http.ServerResponse;
  stalled: boolean;
  timer: NodeJS.Timeout | undefined;
}

interface InjectedFailure {
  method: string;
  pathPattern: RegExp;
  status: number;
  reason: string;
  remaining: number;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType: string | undefined;
  body: unknown;
}

/** Equality-based selectors: `a=b`, `a==b`, `a!=b`, `a`, `!a`, comma-separated. */
export function matchesLabelSelector(
  labels: Record<string, string> | undefined,
  selector: string | undefined,
): boolean {
  if (!selector) return true;
  const have = labels ?? {};
  return selector.split(",").every((term) => {
    const t = term.trim();
    if (!t) return true;
    const ne = t.split("!=");
    if (ne.length === 2) return have[ne[0]!.trim()] !== ne[1]!.trim();
    const eq = t.split(/==?/);
    if (eq.length === 2) return have[eq[0]!.trim()] === eq[1]!.trim();
    if (t.startsWith("!")) return !(t.slice(1) in have);
    return t in have;
  });
}

function deepMerge(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
  const base =
    target && typeof target === "object" && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete base[k];
    else base[k] = deepMerge(base[k], v);
  }
  return base;
}

const clone = <T>(v: T): T => structuredClone(v);

export class FakeApiServer {
  private server: http.Server | undefined;
  private readonly objects = new Map<string, KubeObject>();
  private readonly history: HistoryEntry[] = [];
  private readonly watches = new Set<OpenWatch>();
  private readonly failures: InjectedFailure[] = [];
  private readonly delays: Array<{ method: string; pathPattern: RegExp; ms: number; remaining: number }> = [];
  private revision = 100;
  private compactedThrough = 0;
  readonly requests: RecordedRequest[] = [];
  port = 0;

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const rawBody = Buffer.concat(chunks).toString("utf8");
        const url = new URL(req.url ?? "/", "http://127.0.0.1");
        const isWatch = url.searchParams.get("watch") === "true" || url.searchParams.get("watch") === "1";
        const method = isWatch ? "WATCH" : (req.method ?? "GET");
        const delay = this.delays.find((d) => d.remaining > 0 && d.method === method && d.pathPattern.test(url.pathname));
        if (!delay) return this.handle(req, res, rawBody);
        delay.remaining--;
        setTimeout(() => this.handle(req, res, rawBody), delay.ms);
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    for (const w of this.watches) this.endWatch(w, true);
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** A kubeconfig pointing at this server (plain HTTP on loopback). */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "fake", server: `http://127.0.0.1:${this.port}`, skipTLSVerify: true }],
      users: [{ name: "fake", token: "fake-token" }],
      contexts: [{ name: "fake", cluster: "fake", user: "fake" }],
      currentContext: "fake",
    });
    return kc;
  }

  get resourceVersion(): string {
    return String(this.revision);
  }

  get openWatchCount(): number {
    return this.watches.size;
  }

  // ----- direct manipulation (another actor changing the cluster) -----

  /** Creates or replaces an object at its path; returns the stored copy. */
  put(path: string, obj: KubeObject & Record<string, unknown>): KubeObject {
    return this.store(path, obj);
  }

  private store(path: string, obj: KubeObject): KubeObject {
    const parsed = parseResourcePath(path);
    if (!parsed?.name) throw new Error(`not an object path: ${path}`);
    const existing = this.objects.get(path);
    const stored = clone(obj);
    stored.metadata = {
      ...stored.metadata,
      name: parsed.name,
      ...(parsed.namespace ? { namespace: parsed.namespace } : {}),
      uid: existing?.metadata?.uid ?? stored.metadata?.uid ?? randomUUID(),
      creationTimestamp: existing?.metadata?.creationTimestamp ?? new Date().toISOString(),
      resourceVersion: String(++this.revision),
    };
    this.objects.set(path, stored);
    this.emit(existing ? "MODIFIED" : "ADDED", parsed.resource, stored);
    return clone(stored);
  }

  /** Deletes an object; returns whether it existed. */
  remove(path: string): boolean {
    const parsed = parseResourcePath(path);
    const existing = this.objects.get(path);
    if (!parsed || !existing) return false;
    this.objects.delete(path);
    const gone = clone(existing);
    gone.metadata = { ...gone.metadata, resourceVersion: String(++this.revision) };
    this.emit("DELETED", parsed.resource, gone);
    return true;
  }

  getObject(path: string): KubeObject | undefined {
    const o = this.objects.get(path);
    return o ? clone(o) : undefined;
  }

  // ----- misbehaviour -----

  /** Forgets the watch history: a watch from any older resourceVersion now gets 410 Gone. */
  compact(): void {
    this.compactedThrough = this.revision;
    this.history.length = 0;
  }

  /** Sends an ERROR event with code 410 to every open watch and ends it. */
  expireWatches(): void {
    for (const w of [...this.watches]) {
      this.writeEvent(w, { type: "ERROR", object: goneStatus() });
      this.endWatch(w, false);
    }
  }

  /** Breaks the connection of every open watch (no final chunk). */
  dropWatches(): void {
    for (const w of [...this.watches]) this.endWatch(w, true);
  }

  /** Open watches stay connected but receive nothing more (new watches are served normally). */
  stallWatches(): void {
    for (const w of this.watches) w.stalled = true;
  }

  sendBookmarks(): void {
    for (const w of this.watches) {
      if (!w.bookmarks || w.stalled) continue;
      this.writeEvent(w, {
        type: "BOOKMARK",
        object: { kind: "Bookmark", metadata: { resourceVersion: this.resourceVersion } },
      });
    }
  }

  /** The next `times` requests with this method ("WATCH" for watches) whose path matches are answered `ms` late. */
  delayNext(method: string, pathPattern: RegExp, ms: number, times = 1): void {
    this.delays.push({ method, pathPattern, ms, remaining: times });
  }

  /** The next `times` requests with this method whose path matches fail with `status`. */
  failNext(method: string, pathPattern: RegExp, status: number, reason: string, times = 1): void {
    this.failures.push({ method, pathPattern, status, reason, remaining: times });
  }

  // ----- HTTP -----

  private handle(req: http.IncomingMessage, res: http.ServerResponse, rawBody: string): void {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const query = Object.fromEntries(url.searchParams.entries());
    const method = req.method ?? "GET";
    let body: unknown;
    try {
      body = rawBody ? JSON.parse(rawBody) : undefined;
    } catch {
      return this.fail(res, 400, "BadRequest", "body is not JSON");
    }
    const contentType = req.headers["content-type"];
    this.requests.push({ method, path: url.pathname, query, contentType, body });
    const isWatch = query.watch === "true" || query.watch === "1";
    const failure = this.failures.find(
      (f) => f.remaining > 0 && f.method === (isWatch ? "WATCH" : method) && f.pathPattern.test(url.pathname),
    );
    if (failure) {
      failure.remaining--;
      return this.fail(res, failure.status, failure.reason, `injected ${failure.reason}`);
    }
    const parsed = parseResourcePath(url.pathname);
    if (!parsed) return this.fail(res, 404, "NotFound", `no route ${url.pathname}`);
    const objectPath = url.pathname.replace(/\/(status|scale)$/, "");

    if (!parsed.name) {
      if (method === "GET" && isWatch) return this.watch(parsed, query, res);
      if (method === "GET") return this.list(parsed, query, res);
      if (method === "POST") return this.create(url.pathname, parsed, body as KubeObject, res);
      return this.fail(res, 405, "MethodNotAllowed", method);
    }
    const existing = this.objects.get(objectPath);
    switch (method) {
      case "GET":
        return existing ? this.send(res, 200, existing) : this.notFound(res, parsed);
      case "PUT": {
        if (!existing) return this.notFound(res, parsed);
        const obj = body as KubeObject;
        const wantRv = obj.metadata?.resourceVersion;
        if (wantRv && wantRv !== existing.metadata?.resourceVersion) {
          return this.fail(
            res,
            409,
            "Conflict",
            `Operation cannot be fulfilled on ${parsed.resource} "${parsed.name}": the object has been modified; please apply your changes to the latest version and try again`,
          );
        }
        const next =
          parsed.subresource === "status"
            ? { ...existing, status: (obj as { status?: unknown }).status }
            : obj;
        return this.send(res, 200, this.store(objectPath, next));
      }
      case "PATCH": {
        const isApply = contentType?.startsWith("application/apply-patch");
        if (!existing && !isApply) return this.notFound(res, parsed);
        // A uid in the patch is a precondition, as on a real API server, except on a custom resource's status
        // subresource, whose update strategy copies the stored metadata over the patch's (kube-apiserver 1.34
        // accepted a status apply naming another uid).
        const wantUid = (body as KubeObject | undefined)?.metadata?.uid;
        if (existing && wantUid && parsed.subresource !== "status" && wantUid !== existing.metadata?.uid)
          return this.fail(res, 409, "Conflict", `Precondition failed: UID in precondition: ${wantUid}, UID in object meta: ${existing.metadata?.uid}`);
        // A resourceVersion in an apply is an optimistic-concurrency precondition, status subresource included.
        const wantRv = (body as KubeObject | undefined)?.metadata?.resourceVersion;
        if (existing && wantRv && wantRv !== existing.metadata?.resourceVersion)
          return this.fail(
            res,
            409,
            "Conflict",
            `Operation cannot be fulfilled on ${parsed.resource} "${parsed.name}": the object has been modified; please apply your changes to the latest version and try again`,
          );
        const merged = deepMerge(existing ?? {}, body) as KubeObject;
        return this.send(res, existing ? 200 : 201, this.store(objectPath, merged));
      }
      case "DELETE": {
        if (!existing) return this.notFound(res, parsed);
        const preconditions = (body as { preconditions?: { uid?: string; resourceVersion?: string } } | undefined)?.preconditions;
        if (
          (preconditions?.uid && preconditions.uid !== existing.metadata?.uid) ||
          (preconditions?.resourceVersion && preconditions.resourceVersion !== existing.metadata?.resourceVersion)
        )
          return this.fail(res, 409, "Conflict", `Precondition failed on ${parsed.resource} "${parsed.name}"`);
        this.remove(objectPath);
        return this.send(res, 200, { kind: "Status", apiVersion: "v1", status: "Success" });
      }
      default:
        return this.fail(res, 405, "MethodNotAllowed", method);
    }
  }

  private matching(parsed: ParsedPath, labelSelector: string | undefined): KubeObject[] {
    const prefix = parsed.resource;
    const out: [string, KubeObject][] = [];
    for (const [path, obj] of this.objects) {
      const p = parseResourcePath(path);
      if (!p || p.resource !== prefix) continue;
      if (parsed.namespace && p.namespace !== parsed.namespace) continue;
      if (!matchesLabelSelector(obj.metadata?.labels, labelSelector)) continue;
      out.push([path, obj]);
    }
    return out.sort(([a], [b]) => a.localeCompare(b)).map(([, o]) => clone(o));
  }

  private list(parsed: ParsedPath, query: Record<string, string>, res: http.ServerResponse): void {
    const all = this.matching(parsed, query.labelSelector);
    let offset = 0;
    let rv = this.resourceVersion;
    if (query.continue) {
      const token = JSON.parse(Buffer.from(query.continue, "base64").toString("utf8")) as {
        rv: string;
        offset: number;
      };
      if (Number(token.rv) <= this.compactedThrough)
        return this.fail(res, 410, "Expired", "continue token expired");
      offset = token.offset;
      rv = token.rv;
    }
    const limit = query.limit ? Number(query.limit) : all.length;
    const items = all.slice(offset, offset + limit);
    const more = offset + limit < all.length;
    this.send(res, 200, {
      kind: "List",
      apiVersion: "v1",
      metadata: {
        resourceVersion: rv,
        ...(more
          ? { continue: Buffer.from(JSON.stringify({ rv, offset: offset + limit })).toString("base64") }
          : {}),
      },
      items,
    });
  }

  private create(path: string, parsed: ParsedPath, obj: KubeObject, res: http.ServerResponse): void {
    const name =
      obj.metadata?.name ??
      (obj.metadata?.generateName ? `${obj.metadata.generateName}${randomUUID().slice(0, 5)}` : undefined);
    if (!name) return this.fail(res, 422, "Invalid", "metadata.name: Required value");
    const objectPath = `${path}/${encodeURIComponent(name)}`;
    if (this.objects.has(objectPath))
      return this.fail(res, 409, "AlreadyExists", `${parsed.resource} "${name}" already exists`);
    this.send(res, 201, this.store(objectPath, { ...obj, metadata: { ...obj.metadata, name } }));
  }

  private watch(parsed: ParsedPath, query: Record<string, string>, res: http.ServerResponse): void {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.flushHeaders();
    const w: OpenWatch = {
      resource: parsed.resource,
      namespace: parsed.namespace,
      labelSelector: query.labelSelector,
      bookmarks: query.allowWatchBookmarks === "true",
      res,
      stalled: false,
      timer: undefined,
    };
    const fromRv = query.resourceVersion ? Number(query.resourceVersion) : undefined;
    // Like the real server: a too-old resourceVersion is answered 200 + an ERROR event with 410.
    if (fromRv !== undefined && fromRv !== 0 && fromRv < this.compactedThrough) {
      this.writeEvent(w, { type: "ERROR", object: goneStatus() });
      res.end();
      return;
    }
    if (fromRv === undefined || fromRv === 0) {
      for (const obj of this.matching(parsed, w.labelSelector))
        this.writeEvent(w, { type: "ADDED", object: obj });
    } else {
      for (const e of this.history)
        if (e.rv > fromRv && this.wants(w, e.resource, e.object))
          this.writeEvent(w, { type: e.type, object: e.object });
    }
    if (query.timeoutSeconds)
      w.timer = setTimeout(() => this.endWatch(w, false), Number(query.timeoutSeconds) * 1000);
    this.watches.add(w);
    res.on("close", () => this.endWatch(w, false));
  }

  private wants(w: OpenWatch, resource: string, obj: KubeObject): boolean {
    if (w.resource !== resource) return false;
    if (w.namespace && obj.metadata?.namespace !== w.namespace) return false;
    return matchesLabelSelector(obj.metadata?.labels, w.labelSelector);
  }

  private emit(type: HistoryEntry["type"], resource: string, object: KubeObject): void {
    const entry = { rv: this.revision, type, resource, object: clone(object) };
    this.history.push(entry);
    for (const w of this.watches)
      if (!w.stalled && this.wants(w, resource, object)) this.writeEvent(w, { type, object });
  }

  private writeEvent(w: OpenWatch, event: { type: string; object: unknown }): void {
    if (!w.res.writableEnded) w.res.write(JSON.stringify(event) + "\n");
  }

  private endWatch(w: OpenWatch, abrupt: boolean): void {
    clearTimeout(w.timer);
    this.watches.delete(w);
    if (abrupt) w.res.socket?.destroy();
    else if (!w.res.writableEnded) w.res.end();
  }

  private send(res: http.ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
    res.end(text);
  }

  private notFound(res: http.ServerResponse, parsed: ParsedPath): void {
    this.fail(res, 404, "NotFound", `${parsed.resource.split("/").pop()} "${parsed.name}" not found`);
  }

  private fail(res: http.ServerResponse, code: number, reason: string, message: string): void {
    const status: KubeStatus = { kind: "Status", apiVersion: "v1", status: "Failure", message, reason, code };
    this.send(res, code, status);
  }
}

function goneStatus(): KubeStatus {
  return {
    kind: "Status",
    apiVersion: "v1",
    status: "Failure",
    message: "too old resource version",
    reason: "Expired",
    code: 410,
  };
}
