import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { generatedCrdFiles, REPO_ROOT } from "./generate.js";
import { modelRouteCrd } from "./modelroute.js";
import type { JsonSchema } from "./crd.js";

describe("generated ModelRoute CRD", () => {
  it.each(
    generatedCrdFiles()
      .filter((f) => f.path.includes("modelroutes"))
      .filter((f) => !f.path.startsWith("charts/") || existsSync(join(REPO_ROOT, "charts/gpufleet")))
      .map((f) => [f.path, f] as const),
  )("%s is up to date with operator/api (run `npm run gen:crds`)", (_path, file) => {
    expect(readFileSync(join(REPO_ROOT, file.path), "utf8")).toBe(file.text());
  });

  it("is namespaced, carries the CEL rules, and describes every spec field", () => {
    const crd = modelRouteCrd() as {
      spec: { scope: string; versions: Array<{ schema: { openAPIV3Schema: JsonSchema } }> };
    };
    expect(crd.spec.scope).toBe("Namespaced");
    const spec = (crd.spec.versions[0]!.schema.openAPIV3Schema.properties as Record<string, JsonSchema>)
      .spec!;
    const rules = (spec["x-kubernetes-validations"] as Array<{ rule: string }>).map((r) => r.rule);
    expect(rules.length).toBe(5);
    const undescribed: string[] = [];
    const walk = (node: JsonSchema, path: string) => {
      if (!path.endsWith("[]") && typeof node.description !== "string") undescribed.push(path);
      for (const [name, child] of Object.entries((node.properties ?? {}) as Record<string, JsonSchema>))
        walk(child, `${path}.${name}`);
      if (node.items) walk(node.items as JsonSchema, `${path}[]`);
    };
    walk(spec, "spec");
    expect(undescribed).toEqual([]);
  });
});
