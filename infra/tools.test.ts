import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../tools/binaries.js";
import {
  ensurePulumiTools,
  KUBERNETES_PROVIDER_ALIGNMENT,
  KUBERNETES_SDK_MODULE,
  parseGoModReplacements,
  pulumiToolsCacheDir,
  readPulumiToolPins,
  versionLdflag,
} from "./tools.js";

const npmVersion = (pkg: string): string =>
  (
    JSON.parse(readFileSync(join(REPO_ROOT, "node_modules", pkg, "package.json"), "utf8")) as {
      version: string;
    }
  ).version;

describe("parseGoModReplacements", () => {
  it("reads single-line and block replaces, with and without versions", () => {
    const replacements = parseGoModReplacements(
      [
        "module x",
        "replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e",
        "replace (",
        "\texample.com/a => ../a // local",
        "\texample.com/b v1.0.0 => example.com/c v1.2.3",
        ")",
      ].join("\n"),
    );
    expect(replacements.get("github.com/atotto/clipboard")).toEqual({
      path: "github.com/tgummerer/clipboard",
      version: "v0.0.0-20241001131231-d02d263e614e",
    });
    expect(replacements.get("example.com/a")).toEqual({ path: "../a" });
    expect(replacements.get("example.com/b")).toEqual({ path: "example.com/c", version: "v1.2.3" });
  });
});

describe("readPulumiToolPins", () => {
  const pins = readPulumiToolPins();

  it("pins the CLI to the version of the npm @pulumi/pulumi package (the Automation API checks it)", () => {
    expect(pins.cliVersion).toBe(`v${npmVersion("@pulumi/pulumi")}`);
  });

  it("pins the Kubernetes provider to the release of the npm @pulumi/kubernetes package", () => {
    expect(pins.providerVersion).toBe(`v${npmVersion("@pulumi/kubernetes")}`);
    expect(pins.providerModuleVersion).toMatch(/^v4\.0\.0-\d{14}-[0-9a-f]{12}$/);
  });

  it("stamps the versions where each binary reports them (the provider without its v, as upstream does)", () => {
    expect(versionLdflag("pulumi", pins)).toBe(
      `-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=${pins.cliVersion}`,
    );
    expect(versionLdflag("pulumi-resource-kubernetes", pins)).toBe(
      `-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=${pins.providerVersion.slice(1)}`,
    );
  });

  it("caches outside the repository under the shared gpufleet cache, keyed by the pin hash", () => {
    expect(pins.pinHash).toMatch(/^[0-9a-f]{16}$/);
    expect(pulumiToolsCacheDir(pins.pinHash, { GPUFLEET_CACHE_DIR: "/var/cache/gpufleet" })).toBe(
      `/var/cache/gpufleet/bin/pulumi-${pins.pinHash}`,
    );
  });
});

describe("the provider built on tools/k8s' module versions", () => {
  it("rebuilds when tools/k8s' pins change, since the provider's copy follows them", () => {
    const toolsDir = mkdtempSync(join(tmpdir(), "gpufleet-pins-"));
    try {
      for (const toolModule of ["pulumi", "pulumi-kubernetes", "k8s"])
        cpSync(join(REPO_ROOT, "tools", toolModule), join(toolsDir, toolModule), { recursive: true });
      const before = readPulumiToolPins(toolsDir).pinHash;
      expect(before).toBe(readPulumiToolPins().pinHash);
      const goMod = join(toolsDir, "k8s", "go.mod");
      writeFileSync(goMod, readFileSync(goMod, "utf8").replace(/golang\.org\/x\/net v\S+/, "golang.org/x/net v0.99.0"));
      expect(readPulumiToolPins(toolsDir).pinHash).not.toBe(before);
    } finally {
      rmSync(toolsDir, { recursive: true, force: true });
    }
  });

  it("rewrites only modules the provider's tool module requires (each is copied at its pinned version)", () => {
    const requirements = readFileSync(join(REPO_ROOT, "tools", "pulumi-kubernetes", "go.mod"), "utf8");
    for (const modulePath of KUBERNETES_PROVIDER_ALIGNMENT) {
      if (modulePath === KUBERNETES_SDK_MODULE) continue; // replaced by the released sdk of the provider's version
      expect(requirements, modulePath).toContain(`\t${modulePath} v`);
    }
  });
});

describe("a background build (the cluster tests' setup starts one)", () => {
  it("runs go at the niceness asked for, and an abort kills it with the processes it started", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gpufleet-pulumi-bg-"));
    try {
      const fakeBin = join(dir, "bin");
      mkdirSync(fakeBin);
      // A `go` that records its niceness (field 19 of /proc/self/stat) and its child's pid, then waits
      // on that child as a compiler would run.
      writeFileSync(
        join(fakeBin, "go"),
        `#!/bin/sh\nawk '{print $19}' /proc/$$/stat > ${join(dir, "nice")}\nsleep 60 &\necho $! > ${join(dir, "child")}\nwait\n`,
      );
      chmodSync(join(fakeBin, "go"), 0o755);
      const abort = new AbortController();
      const build = ensurePulumiTools({
        env: { ...process.env, PATH: `${fakeBin}:/usr/bin:/bin` },
        cacheDir: join(dir, "cache"),
        niceness: 19,
        signal: abort.signal,
        onProgress: () => undefined,
      });
      const outcome = build.then(
        () => "built",
        (error: unknown) => String(error),
      );
      const deadline = Date.now() + 10_000;
      while (!existsSync(join(dir, "child")) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const childPid = Number(readFileSync(join(dir, "child"), "utf8").trim());
      expect(readFileSync(join(dir, "nice"), "utf8").trim()).toBe("19");
      abort.abort();
      expect(await outcome).toMatch(/failed/);
      const alive = (pid: number): boolean => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      };
      const gone = Date.now() + 5_000;
      while (alive(childPid) && Date.now() < gone) await new Promise((r) => setTimeout(r, 50));
      expect(alive(childPid)).toBe(false);
      // The lock is released for the next caller.
      expect(existsSync(join(dir, "cache", ".build.lock"))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
