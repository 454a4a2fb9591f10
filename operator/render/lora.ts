import type { V1Container, V1Volume, V1VolumeMount } from "@kubernetes/client-node";
import type { AdapterSpec, ModelDeploymentSpec } from "../api/modeldeployment.js";

/**
 * LoRA serving with vLLM. Facts used (vllm-project/vllm):
 * - `--enable-lora`, `--max-loras` (adapters one batch may mix, GPU slots), `--max-lora-rank` (slots are
 *   sized for it; accepted values in vllm/config/lora.py), `--lora-modules name=path ...` (adapters
 *   loaded at start; a path or a Hub repository id).
 * - Runtime updates: POST /v1/load_lora_adapter {lora_name, lora_path} and POST
 *   /v1/unload_lora_adapter {lora_name}, served only when the server runs with
 *   VLLM_ALLOW_RUNTIME_LORA_UPDATING=True (vllm/entrypoints/openai, docs.vllm.ai features/lora).
 * - GET /v1/models lists the loaded adapters next to the base model, each with `parent` = base name.
 */
export const LORA_RUNTIME_ENV = "VLLM_ALLOW_RUNTIME_LORA_UPDATING";
export const LOAD_ADAPTER_PATH = "/v1/load_lora_adapter";
export const UNLOAD_ADAPTER_PATH = "/v1/unload_lora_adapter";
export const DEFAULT_MAX_LORAS = 4;
export const DEFAULT_MAX_LORA_RANK = 64;

export interface LoraModule {
  name: string;
  /** What vLLM's lora_path takes: a directory in the container or a Hub repository id. */
  path: string;
  /** Only in pods started with it (a URL adapter, downloaded before the engine starts): never loaded at runtime. */
  startOnly?: true;
}

/** Where URL adapters are downloaded to in the pod: one directory per adapter name. */
export const URL_ADAPTERS_MOUNT_PATH = "/adapters";
export const URL_ADAPTERS_VOLUME = "lora-adapters";
export const ADAPTER_FETCH_CONTAINER = "adapter-fetch";
/** adapter_config.json is small; more than this is refused. */
export const ADAPTER_CONFIG_MAX_BYTES = 1_048_576;

/**
 * The URL adapters' downloader, run by the engine's image (vLLM images ship Python 3) in an init container,
 * standard library only. Its one argument is a JSON list of {name, baseUrl, maxBytes, sha256?} the
 * operator wrote from validated fields. For each: GET <baseUrl>/adapter_config.json (at most 1 MiB) and
 * <baseUrl>/adapter_model.safetensors (at most maxBytes, sha256 checked when given) over https with the
 * system trust store, 30 s per read; a redirect is followed only to https on the same host and port; a
 * larger Content-Length or body fails at once; files land under /adapters/<name> via a temporary name.
 * Any failure exits non-zero with a one-line reason (no response bytes), so the pod does not start.
 */
export const ADAPTER_FETCH_SCRIPT = [
  "import hashlib, json, os, ssl, sys, urllib.error, urllib.parse, urllib.request",
  "class SameHost(urllib.request.HTTPRedirectHandler):",
  "    def redirect_request(self, req, fp, code, msg, headers, newurl):",
  "        a, b = urllib.parse.urlsplit(req.full_url), urllib.parse.urlsplit(urllib.parse.urljoin(req.full_url, newurl))",
  "        if b.scheme != 'https' or b.netloc != a.netloc:",
  "            raise ValueError('redirect to another host refused')",
  "        return urllib.request.HTTPRedirectHandler.redirect_request(self, req, fp, code, msg, headers, b.geturl())",
  "opener = urllib.request.build_opener(SameHost(), urllib.request.HTTPSHandler(context=ssl.create_default_context()))",
  "def fetch(url, limit, dest, digest):",
  "    if urllib.parse.urlsplit(url).scheme != 'https':",
  "        raise ValueError('not https')",
  "    with opener.open(url, timeout=30) as r:",
  "        length = r.headers.get('Content-Length')",
  "        if length is not None and int(length) > limit:",
  "            raise ValueError('larger than %d bytes' % limit)",
  "        h, n = hashlib.sha256(), 0",
  "        with open(dest + '.part', 'wb') as f:",
  "            while True:",
  "                chunk = r.read(1 << 20)",
  "                if not chunk:",
  "                    break",
  "                n += len(chunk)",
  "                if n > limit:",
  "                    raise ValueError('larger than %d bytes' % limit)",
  "                h.update(chunk)",
  "                f.write(chunk)",
  "    if digest and h.hexdigest() != digest:",
  "        raise ValueError('sha256 mismatch')",
  "    os.replace(dest + '.part', dest)",
  "for a in json.loads(sys.argv[1]):",
  "    d = os.path.join(sys.argv[2], a['name'])",
  "    os.makedirs(d, exist_ok=True)",
  "    base = a['baseUrl'].rstrip('/') + '/'",
  "    try:",
  `        fetch(base + 'adapter_config.json', ${ADAPTER_CONFIG_MAX_BYTES}, os.path.join(d, 'adapter_config.json'), None)`,
  "        fetch(base + 'adapter_model.safetensors', a['maxBytes'], os.path.join(d, 'adapter_model.safetensors'), a.get('sha256'))",
  "    except Exception as e:",
  "        reason = e.code if isinstance(e, urllib.error.HTTPError) else (e.reason if isinstance(e, urllib.error.URLError) else e)",
  "        reason = reason if isinstance(reason, (int, ValueError, ssl.SSLError)) else type(reason).__name__",
  "        sys.exit('adapter %s: download failed: %s' % (a['name'], str(reason).splitlines()[0][:200] if str(reason) else type(reason).__name__))",
  "    print('adapter %s: downloaded' % a['name'])",
].join("\n");

export function urlAdapters(spec: Pick<ModelDeploymentSpec, "adapters">): (AdapterSpec & { source: { url: NonNullable<AdapterSpec["source"]["url"]> } })[] {
  return (spec.adapters ?? []).filter((adapter): adapter is AdapterSpec & { source: { url: NonNullable<AdapterSpec["source"]["url"]> } } => !!adapter.source.url);
}

/**
 * The pod parts that download URL adapters before the engine starts: an emptyDir (sized for the adapters'
 * bounds), an init container of the engine's image that runs ADAPTER_FETCH_SCRIPT into it, and the
 * engine's read-only mount of it. Undefined when the spec has no URL adapter.
 */
export function urlAdapterPodParts(
  spec: Pick<ModelDeploymentSpec, "adapters">,
  image: string,
  securityContext: V1Container["securityContext"],
): { initContainer: V1Container; volume: V1Volume; mount: V1VolumeMount } | undefined {
  const adapters = urlAdapters(spec);
  if (!adapters.length) return undefined;
  const list = adapters.map((a) => ({
    name: a.name,
    baseUrl: a.source.url.baseUrl,
    maxBytes: a.source.url.maxBytes,
    ...(a.source.url.sha256 ? { sha256: a.source.url.sha256 } : {}),
  }));
  const bytes = list.reduce((sum, a) => sum + a.maxBytes + ADAPTER_CONFIG_MAX_BYTES, 0);
  const mebibytes = Math.ceil(bytes / 1_048_576) + 16;
  return {
    volume: { name: URL_ADAPTERS_VOLUME, emptyDir: { sizeLimit: `${mebibytes}Mi` } },
    mount: { name: URL_ADAPTERS_VOLUME, mountPath: URL_ADAPTERS_MOUNT_PATH, readOnly: true },
    initContainer: {
      name: ADAPTER_FETCH_CONTAINER,
      image,
      command: ["python3", "-c", ADAPTER_FETCH_SCRIPT, JSON.stringify(list), URL_ADAPTERS_MOUNT_PATH],
      resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { memory: "512Mi" } },
      // The script's one-line reason shows in the pod's status when the download fails.
      terminationMessagePolicy: "FallbackToLogsOnError",
      ...(securityContext ? { securityContext } : {}),
      volumeMounts: [{ name: URL_ADAPTERS_VOLUME, mountPath: URL_ADAPTERS_MOUNT_PATH }],
    },
  };
}

/** LoRA is on when the spec lists adapters or sets `lora` (so the last adapter's removal does not restart). */
export function loraEnabled(spec: Pick<ModelDeploymentSpec, "adapters" | "lora" | "engine">): boolean {
  return spec.engine.kind === "vllm" && (!!spec.lora || (spec.adapters?.length ?? 0) > 0);
}

export function loraLimits(spec: Pick<ModelDeploymentSpec, "lora">): { maxLoras: number; maxRank: number } {
  return { maxLoras: spec.lora?.maxLoras ?? DEFAULT_MAX_LORAS, maxRank: spec.lora?.maxRank ?? DEFAULT_MAX_LORA_RANK };
}

export function adapterPath(adapter: Pick<AdapterSpec, "name" | "source">): string {
  if (adapter.source.url) return `${URL_ADAPTERS_MOUNT_PATH}/${adapter.name}`;
  return adapter.source.huggingFace?.repo ?? adapter.source.path ?? "";
}

export function loraModulesOf(spec: Pick<ModelDeploymentSpec, "adapters">): LoraModule[] {
  return (spec.adapters ?? []).map((adapter) => ({
    name: adapter.name,
    path: adapterPath(adapter),
    ...(adapter.source.url ? { startOnly: true as const } : {}),
  }));
}

/** `--lora-modules` values as vLLM parses them: `name=path`. */
export function loraModuleArg(module: LoraModule): string {
  return `${module.name}=${module.path}`;
}

/** The engine flags for LoRA; `startModules` are the adapters the pods load at start. */
export function vllmLoraArgs(spec: ModelDeploymentSpec, startModules: readonly LoraModule[]): string[] {
  if (!loraEnabled(spec)) return [];
  const { maxLoras, maxRank } = loraLimits(spec);
  return [
    "--enable-lora",
    "--max-loras",
    String(maxLoras),
    "--max-lora-rank",
    String(maxRank),
    ...(startModules.length ? ["--lora-modules", ...startModules.map(loraModuleArg)] : []),
  ];
}

/**
 * The `--lora-modules` values in a container's args (the adapters a running pod template starts with),
 * or undefined when the args carry none. Parses only what `vllmLoraArgs` writes.
 */
export function startModulesInArgs(args: readonly string[] | undefined): LoraModule[] | undefined {
  if (!args) return undefined;
  const at = args.indexOf("--lora-modules");
  if (at === -1) return undefined;
  const modules: LoraModule[] = [];
  for (const value of args.slice(at + 1)) {
    if (value.startsWith("-")) break;
    const equals = value.indexOf("=");
    if (equals <= 0) break;
    modules.push({ name: value.slice(0, equals), path: value.slice(equals + 1) });
  }
  return modules;
}
