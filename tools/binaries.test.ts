import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  BINARY_RECIPES,
  alignedRequirementEdits,
  defaultBinaryCacheDir,
  effectiveModuleVersions,
  ensureClusterBinaries,
  ensurePinnedBinaries,
  parseGoModRequirements,
  prometheusReleaseVersion,
  readPinnedTools,
  versionMatchesPin,
  type BinaryProgressEvent,
} from "./binaries.js";

describe("parseGoModRequirements", () => {
  it("reads single-line and block requires, ignoring comments", () => {
    const requirements = parseGoModRequirements(
      [
        "module example.com/tools",
        "go 1.24.0",
        "tool k8s.io/kubernetes/cmd/kubectl",
        "require k8s.io/kubernetes v1.34.4",
        "require (",
        "\tgo.etcd.io/etcd/server/v3 v3.6.7 // indirect",
        "\tsigs.k8s.io/kwok v0.7.0",
        ")",
        "replace k8s.io/api => k8s.io/api v0.34.4",
      ].join("\n"),
    );
    expect(requirements.get("k8s.io/kubernetes")).toBe("v1.34.4");
    expect(requirements.get("go.etcd.io/etcd/server/v3")).toBe("v3.6.7");
    expect(requirements.get("sigs.k8s.io/kwok")).toBe("v0.7.0");
    expect(requirements.has("k8s.io/api")).toBe(false);
  });
});

describe("building on the cluster binaries' module versions", () => {
  const clusterGoMod = [
    "module gpufleet.io/tools/k8s",
    "require (",
    "\tgolang.org/x/net v0.38.0 // indirect",
    "\tk8s.io/api v0.34.4 // indirect",
    "\tk8s.io/apiextensions-apiserver v0.0.0 // indirect",
    ")",
    "replace (",
    "\tk8s.io/api => k8s.io/api v0.34.4",
    "\tk8s.io/apiextensions-apiserver => k8s.io/apiextensions-apiserver v0.34.4",
    ")",
  ].join("\n");

  it("reads the version built: a replacement by another version of the same module wins over v0.0.0", () => {
    const versions = effectiveModuleVersions(clusterGoMod);
    expect(versions.get("golang.org/x/net")).toBe("v0.38.0");
    expect(versions.get("k8s.io/api")).toBe("v0.34.4");
    expect(versions.get("k8s.io/apiextensions-apiserver")).toBe("v0.34.4");
  });

  it("moves shared requirements onto those versions (down or up), keeps the others, drops what the build does not use", () => {
    const lwsGoMod = [
      "module sigs.k8s.io/lws",
      "require (",
      "\tgithub.com/onsi/ginkgo/v2 v2.27.5",
      "\tk8s.io/api v0.34.3",
      "\tsigs.k8s.io/controller-runtime v0.22.4",
      ")",
      "require golang.org/x/net v0.43.0 // indirect",
    ].join("\n");
    const aligned = effectiveModuleVersions(clusterGoMod);
    expect(alignedRequirementEdits(lwsGoMod, aligned)).toEqual([
      "-require=k8s.io/api@v0.34.4",
      "-require=golang.org/x/net@v0.38.0",
    ]);
    const keep = new Set(["k8s.io/api", "golang.org/x/net", "sigs.k8s.io/controller-runtime"]);
    expect(alignedRequirementEdits(lwsGoMod, aligned, keep)).toEqual([
      "-droprequire=github.com/onsi/ginkgo/v2",
      "-require=k8s.io/api@v0.34.4",
      "-require=golang.org/x/net@v0.38.0",
    ]);
  });

  it("builds the LeaderWorkerSet controller that way, so its cache folder follows tools/k8s too", () => {
    const lws = BINARY_RECIPES.find((recipe) => recipe.name === "lws-controller");
    expect(lws?.alignedWith?.toolModule).toBe("k8s");
  });
});

describe("versionMatchesPin", () => {
  it("accepts the pinned major.minor whatever the patch", () => {
    expect(versionMatchesPin("Kubernetes v1.34.1", "v1.34.4")).toBe(true);
    expect(versionMatchesPin("etcd Version: 3.6.7\nGit SHA: x", "v3.6.7")).toBe(true);
  });

  it("rejects another minor, such as gcloud's kubectl 1.32", () => {
    expect(versionMatchesPin("Client Version: v1.32.2\nKustomize Version: v5.5.0", "v1.34.4")).toBe(false);
    expect(versionMatchesPin("command not found", "v1.34.4")).toBe(false);
  });
});

describe("readPinnedTools", () => {
  it("takes every binary's version from the tools go.mod files", () => {
    const pins = readPinnedTools();
    expect(pins.versions["kube-apiserver"]).toMatch(/^v1\.34\.\d+$/);
    expect(pins.versions.kubectl).toBe(pins.versions["kube-apiserver"]);
    expect(pins.versions.etcd).toMatch(/^v3\.6\.\d+$/);
    expect(pins.versions.kwok).toMatch(/^v0\.7\.\d+$/);
    expect(pins.versions.helm).toMatch(/^v3\.19\.\d+$/);
    expect(pins.pinHash).toMatch(/^[0-9a-f]{16}$/);
  });

  it("names a recipe for each of the seven cluster binaries, prometheus + promtool and the LWS controller", () => {
    expect(BINARY_RECIPES.map((recipe) => recipe.name).sort()).toEqual(
      [
        "etcd",
        "helm",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubectl",
        "kwok",
        "prometheus",
        "promtool",
        "lws-controller",
      ].sort(),
    );
  });

  it("pins the LeaderWorkerSet controller in tools/lws, cached in its own folder", () => {
    const pins = readPinnedTools();
    expect(pins.versions["lws-controller"]).toMatch(/^v0\.\d+\.\d+$/);
    expect(pins.cacheFolders["lws-controller"]).toMatch(/^lws-[0-9a-f]{16}$/);
    expect(pins.cacheFolders["lws-controller"]).not.toBe(pins.pinHash);
    const lws = BINARY_RECIPES.find((recipe) => recipe.name === "lws-controller");
    expect(lws?.versionLdflags("v0.8.0")).toContain("-X sigs.k8s.io/lws/pkg/version.GitVersion=v0.8.0");
  });

  it("pins prometheus and promtool in tools/prometheus, cached apart from the cluster binaries", () => {
    const pins = readPinnedTools();
    expect(pins.versions.prometheus).toMatch(/^v0\.3\d\d\.\d+$/);
    expect(pins.versions.promtool).toBe(pins.versions.prometheus);
    expect(pins.cacheFolders.kubectl).toBe(pins.pinHash);
    expect(pins.cacheFolders.prometheus).toMatch(/^prometheus-[0-9a-f]{16}$/);
    expect(pins.cacheFolders.promtool).toBe(pins.cacheFolders.prometheus);
  });
});

describe("prometheusReleaseVersion", () => {
  it("decodes the Go module version into the release the binary reports", () => {
    expect(prometheusReleaseVersion("v0.316.0")).toBe("3.16.0");
    expect(prometheusReleaseVersion("v0.305.2")).toBe("3.5.2");
    expect(() => prometheusReleaseVersion("v3.16.0")).toThrow(/v0\.MNN\.P/);
  });
});

describe("defaultBinaryCacheDir", () => {
  it("prefers GPUFLEET_CACHE_DIR, then XDG_CACHE_HOME, and keys the folder by the pin hash", () => {
    expect(defaultBinaryCacheDir("abc", { GPUFLEET_CACHE_DIR: "/c", XDG_CACHE_HOME: "/x" })).toBe(
      "/c/bin/abc",
    );
    expect(defaultBinaryCacheDir("abc", { XDG_CACHE_HOME: "/x" })).toBe("/x/gpufleet/bin/abc");
  });
});

describe("ensureClusterBinaries resolution order", () => {
  let root: string;
  const fakeBinary = (dir: string, name: string, versionOutput: string): string => {
    mkdirSync(dir, { recursive: true });
    const path = join(dir, name);
    writeFileSync(path, `#!/bin/sh\necho '${versionOutput}'\n`);
    chmodSync(path, 0o755);
    return path;
  };

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "binaries-"));
  });
  afterEach(() => {
    rmSync(root, { recursive: true, force: true });
  });

  it("takes KUBEBUILDER_ASSETS before PATH", async () => {
    const assets = fakeBinary(join(root, "assets"), "kube-apiserver", "Kubernetes v1.30.0");
    fakeBinary(join(root, "path"), "kube-apiserver", "Kubernetes v1.34.4");
    const binaries = await ensureClusterBinaries({
      only: ["kube-apiserver"],
      env: { KUBEBUILDER_ASSETS: join(root, "assets"), PATH: join(root, "path") },
      cacheDir: join(root, "cache"),
      onProgress: () => undefined,
    });
    expect(binaries["kube-apiserver"]).toBe(assets);
  });

  it("skips a PATH binary of another minor version and uses the cache", async () => {
    fakeBinary(join(root, "path"), "kubectl", "Client Version: v1.32.2");
    const cached = fakeBinary(join(root, "cache"), "kubectl", "Client Version: v1.34.4");
    const events: BinaryProgressEvent[] = [];
    const binaries = await ensureClusterBinaries({
      only: ["kubectl"],
      env: { PATH: join(root, "path") },
      cacheDir: join(root, "cache"),
      onProgress: (event) => events.push(event),
    });
    expect(binaries.kubectl).toBe(cached);
    expect(events.map((event) => event.kind)).toEqual(["rejected", "found"]);
  });

  it("accepts a PATH binary reporting the pinned minor", async () => {
    const onPath = fakeBinary(join(root, "path"), "kubectl", "Client Version: v1.34.0");
    const binaries = await ensureClusterBinaries({
      only: ["kubectl"],
      env: { PATH: join(root, "path") },
      cacheDir: join(root, "cache"),
      onProgress: () => undefined,
    });
    expect(binaries.kubectl).toBe(onPath);
  });

  /** A stand-in for `go build -o OUT PKG` that writes a script reporting `reportedVersion`. */
  const fakeGo = (reportedVersion: string, exitCode = 0): string => {
    const path = join(root, "fake-go");
    writeFileSync(
      path,
      [
        "#!/bin/sh",
        'while [ "$#" -gt 0 ]; do if [ "$1" = "-o" ]; then out="$2"; fi; shift; done',
        `if [ ${exitCode} -ne 0 ]; then echo "compile error: boom" >&2; exit ${exitCode}; fi`,
        `printf '#!/bin/sh\\necho "${reportedVersion}"\\n' > "$out"`,
        'chmod +x "$out"',
      ].join("\n"),
    );
    chmodSync(path, 0o755);
    return path;
  };

  it("builds a missing binary into the cache and reports start and finish", async () => {
    const events: BinaryProgressEvent[] = [];
    const binaries = await ensureClusterBinaries({
      only: ["kwok"],
      env: { PATH: `${join(root, "empty")}:/usr/bin:/bin` },
      cacheDir: join(root, "cache"),
      goBinary: fakeGo("kwok version v0.7.0 go1.26 (linux/amd64)"),
      onProgress: (event) => events.push(event),
    });
    expect(binaries.kwok).toBe(join(root, "cache", "kwok"));
    expect(events.map((event) => event.kind)).toEqual(["build-start", "build-done"]);
  });

  it("fails hard when the build fails, quoting the compiler output", async () => {
    await expect(
      ensureClusterBinaries({
        only: ["kwok"],
        env: { PATH: `${join(root, "empty")}:/usr/bin:/bin` },
        cacheDir: join(root, "cache"),
        goBinary: fakeGo("unused", 1),
        onProgress: () => undefined,
      }),
    ).rejects.toThrow(/go build of kwok failed \(exit 1\)[\s\S]*compile error: boom/);
  });

  it("rejects a Prometheus 2 on PATH (Debian's package) and builds the pinned one with its release version stamped", async () => {
    fakeBinary(join(root, "path"), "promtool", "promtool, version 2.45.3+ds (branch: debian/sid)");
    const events: BinaryProgressEvent[] = [];
    const binaries = await ensurePinnedBinaries(["promtool"], {
      env: { PATH: `${join(root, "path")}:/usr/bin:/bin` },
      cacheDir: join(root, "cache"),
      goBinary: fakeGo("promtool, version 3.16.0 (branch: module, revision: v0.316.0)"),
      onProgress: (event) => events.push(event),
    });
    expect(binaries.promtool).toBe(join(root, "cache", "promtool"));
    expect(events.map((event) => event.kind)).toEqual(["rejected", "build-start", "build-done"]);
    expect(events[0]).toMatchObject({ reason: "reports 2.45, pinned 3.16.0" });
  });

  it("rejects a built binary that reports another version", async () => {
    await expect(
      ensureClusterBinaries({
        only: ["kwok"],
        env: { PATH: `${join(root, "empty")}:/usr/bin:/bin` },
        cacheDir: join(root, "cache"),
        goBinary: fakeGo("kwok version v0.6.1"),
        onProgress: () => undefined,
      }),
    ).rejects.toThrow(/instead of v0\.7\.0/);
  });
});
