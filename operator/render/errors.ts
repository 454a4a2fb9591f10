/**
 * Why a ModelDeployment cannot be rendered. The reconciler reports `reason` in a condition; each
 * case is a spec the CRD's validation let through (or cannot check) but the renderer must refuse.
 */
export type RenderErrorReason =
  | "ManagedEngineFlag"
  | "UnsupportedModelSource"
  | "UnsupportedKvCacheDtype"
  | "InvalidName"
  | "MissingUid"
  | "InvalidPlan"
  | "MultiNodeNotRendered"
  | "MultiNodeUnsupported";

export class RenderError extends Error {
  override readonly name: string = "RenderError";
  constructor(
    readonly reason: RenderErrorReason,
    message: string,
  ) {
    super(message);
  }
}

/** spec.engine.args sets a flag the operator derives from the plan or from other spec fields. */
export class ManagedEngineFlagError extends RenderError {
  override readonly name = "ManagedEngineFlagError";
  constructor(
    /** The user argument as written, e.g. `--tensor-parallel-size=4`. */
    readonly argument: string,
    /** The flag it collides with, in the operator's spelling, e.g. `--tensor-parallel-size`. */
    readonly managedFlag: string,
  ) {
    super(
      "ManagedEngineFlag",
      `engine.args entry "${argument.length > 80 ? `${argument.slice(0, 80)}…` : argument}" sets ${managedFlag}, which the operator manages; use the matching spec field instead`,
    );
  }
}
