import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { modelDeploymentCrd, modelDeploymentCrdYaml, type JsonSchema } from "./crd.js";
import { generatedCrdFiles, GENERATED_CRD_PATHS, REPO_ROOT } from "./generate.js";

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

/**
 * Where a spec value has no bound of its own: a string without maxLength, enum, date-time format, a pattern
 * that bounds the length (no `+`, `*` or open `{n,}`) or a CEL size() rule; a list without maxItems; a map
 * without maxProperties; an opaque (preserve-unknown-fields) object without a CEL size rule.
 */
function unbounded(node: JsonSchema, path: string): string | undefined {
  const rules = ((node["x-kubernetes-validations"] as Array<{ rule: string }> | undefined) ?? []).map((v) => v.rule).join(" ");
  const sized = /\bsize\(/.test(rules);
  if (node.type === "string") {
    const pattern = typeof node.pattern === "string" ? node.pattern : undefined;
    const boundedPattern = pattern !== undefined && /^\^.*\$$/.test(pattern) && !/[+*]|\{\d+,\}/.test(pattern.replace(/\\./g, ""));
    if (node.maxLength === undefined && !node.enum && node.format !== "date-time" && !boundedPattern && !sized) return `${path}: string without a bound`;
  }
  if (node.type === "array" && node.maxItems === undefined) return `${path}: list without maxItems`;
  if (node.type === "object" && node.additionalProperties && node.maxProperties === undefined) return `${path}: map without maxProperties`;
  if (node["x-kubernetes-preserve-unknown-fields"] === true && !sized && !/string\(self\)/.test(rules)) return `${path}: opaque object without a size rule`;
  return undefined;
}

describe("tenant input in every generated CRD", () => {
  it.each(generatedCrdFiles().filter((file) => !file.path.startsWith("charts/")).map((file) => [file.path, file.text] as const))(
    "%s bounds every string, list and map of its spec (a tenant cannot send unbounded input)",
    (_path, text) => {
      const generated = parse(text()) as { spec: { versions: Array<{ name: string; schema: { openAPIV3Schema: JsonSchema } }> } };
      const offenders: string[] = [];
      for (const { name, schema } of generated.spec.versions) {
        const spec = (schema.openAPIV3Schema.properties as Record<string, JsonSchema> | undefined)?.spec;
        if (!spec) continue;
        walk(spec, `${name}.spec`, (node, path) => {
          const offence = unbounded(node, path);
          if (offence) offenders.push(offence);
        });
      }
      expect(offenders).toEqual([]);
    },
  );

  it("finds an unbounded string, list, map and opaque object", () => {
    const offenders = [
      unbounded({ type: "string" }, "s"),
      unbounded({ type: "string", pattern: "^[a-z]+$" }, "p"),
      unbounded({ type: "array", items: { type: "string", maxLength: 1 } }, "l"),
      unbounded({ type: "object", additionalProperties: { type: "string", maxLength: 1 } }, "m"),
      unbounded({ type: "object", "x-kubernetes-preserve-unknown-fields": true }, "o"),
    ];
    expect(offenders).toEqual([
      "s: string without a bound",
      "p: string without a bound",
      "l: list without maxItems",
      "m: map without maxProperties",
      "o: opaque object without a size rule",
    ]);
    expect(unbounded({ type: "string", pattern: "^[a-f0-9]{64}$" }, "sha")).toBeUndefined();
  });
});
