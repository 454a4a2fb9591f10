import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../tools/binaries.js";
import {
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
