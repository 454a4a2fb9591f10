import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { modelDeploymentCrd, modelDeploymentCrdYaml, type JsonSchema } from "./crd.js";
import { GENERATED_CRD_PATHS, REPO_ROOT } from "./generate.js";

function walk(node: JsonSchema, path: string, visit: (node: JsonSchema, path: string) => void): void {
  visit(node, path);
  const properties = node.properties as Record<string, JsonSchema> | undefined;
  for (const [name, child] of Object.entries(properties ?? {})) walk(child, `${path}.${name}`, visit);
  if (node.items) walk(node.items as JsonSchema, `${path}[]`, visit);
  if (node.additionalProperties && typeof node.additionalProperties === "object")
    walk(node.additionalProperties as JsonSchema, `${path}{}`, visit);
}

const crd = modelDeploymentCrd() as {
  spec: { versions: Array<{ schema: { openAPIV3Schema: JsonSchema }; subresources: JsonSchema }> };
};
const version = crd.spec.versions[0]!;
const root = version.schema.openAPIV3Schema;

describe("generated ModelDeployment CRD", () => {
  it.each(GENERATED_CRD_PATHS.filter((p) => !p.startsWith("charts/") || existsSync(join(REPO_ROOT, "charts/gpufleet"))))(
    "%s is up to date with operator/api (run `npm run gen:crds`)",
    (relative) => {
      expect(readFileSync(join(REPO_ROOT, relative), "utf8")).toBe(modelDeploymentCrdYaml());
    },
  );

  it("is structural: every node has a type, int-or-string or preserved fields, and no draft-07 constructs", () => {
    const offenders: string[] = [];
    walk(root, "", (node, path) => {
      const typed =
        typeof node.type === "string" ||
        node["x-kubernetes-int-or-string"] === true ||
        node["x-kubernetes-preserve-unknown-fields"] === true;
      if (!typed) offenders.push(`${path}: no type`);
      for (const banned of ["anyOf", "oneOf", "patternProperties", "const", "$id"])
        if (banned in node) offenders.push(`${path}: ${banned}`);
      if (typeof node.exclusiveMinimum === "number" || typeof node.exclusiveMaximum === "number")
        offenders.push(`${path}: numeric exclusive bound`);
    });
    expect(offenders).toEqual([]);
  });

  it("describes every spec and status field so `kubectl explain` teaches the API", () => {
    const undescribed: string[] = [];
    for (const part of ["spec", "status"] as const) {
      walk((root.properties as Record<string, JsonSchema>)[part]!, part, (node, path) => {
        if (!path.endsWith("[]") && !path.endsWith("{}") && typeof node.description !== "string")
          undescribed.push(path);
      });
    }
    expect(undescribed).toEqual([]);
  });

  it("offers the scale subresource on spec.replicas with the status selector", () => {
    expect(version.subresources).toEqual({
      status: {},
      scale: {
        specReplicasPath: ".spec.replicas",
        statusReplicasPath: ".status.replicas",
        labelSelectorPath: ".status.selector",
      },
    });
  });
});
