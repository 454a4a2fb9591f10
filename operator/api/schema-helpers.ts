import { Type, type SchemaOptions, type TSchema, type TUnsafe } from "@sinclair/typebox";

/**
 * Small builders for schemas that must stay *structural* in the Kubernetes sense: every node has a
 * `type`, no `anyOf`/`patternProperties`, so the CRD generated from them is accepted by the API server.
 */

/** A string limited to a fixed set of values (`enum`, not TypeBox's `anyOf` of literals). */
export function StringEnum<const Values extends readonly string[]>(
  values: Values,
  options: SchemaOptions = {},
): TUnsafe<Values[number]> {
  return Type.Unsafe<Values[number]>({ ...options, type: "string", enum: [...values] });
}

/**
 * A string-to-string map (`additionalProperties`, which CRDs accept, instead of `patternProperties`);
 * `valueMaxLength` bounds each value (keys are bounded by a CEL rule: CRDs have no `propertyNames`).
 */
export function StringMap(options: SchemaOptions & { valueMaxLength?: number } = {}): TUnsafe<Record<string, string>> {
  const { valueMaxLength, ...rest } = options;
  return Type.Unsafe<Record<string, string>>({
    ...rest,
    type: "object",
    additionalProperties: { type: "string", ...(valueMaxLength === undefined ? {} : { maxLength: valueMaxLength }) },
  });
}

/** An object whose content Kubernetes keeps as given (for embedded core types such as Affinity). */
export function OpaqueObject<T = Record<string, unknown>>(options: SchemaOptions = {}): TUnsafe<T> {
  return Type.Unsafe<T>({ ...options, type: "object", "x-kubernetes-preserve-unknown-fields": true });
}

/** `auto` or a whole number, as Kubernetes' int-or-string. */
export function IntOrAuto(options: SchemaOptions = {}): TUnsafe<number | "auto"> {
  return Type.Unsafe<number | "auto">({ ...options, "x-kubernetes-int-or-string": true });
}

/** One CEL rule with the message a person sees when an object breaks it. */
export interface CelRule {
  rule: string;
  message: string;
  fieldPath?: string;
  reason?: "FieldValueInvalid" | "FieldValueForbidden" | "FieldValueRequired" | "FieldValueDuplicate";
}

export function withCel<T extends TSchema>(schema: T, rules: CelRule[]): T {
  return { ...schema, "x-kubernetes-validations": rules } as T;
}
