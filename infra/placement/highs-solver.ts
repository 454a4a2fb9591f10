import * as highsModule from "highs";

/** The part of highs' one-shot API used here. */
interface LegacyHighs {
  solve(
    problem: string,
    options?: Readonly<Record<string, string | number | boolean>>,
  ): { Status: string; ObjectiveValue: number; Columns: Record<string, { Primal?: number }> };
}
type HighsLoader = () => Promise<LegacyHighs>;

// highs ships CommonJS typings beside an ES module build, so under NodeNext TypeScript types the
// default import as the module object; at run time it is the loader (or, via CJS interop, holds it).
function resolveLoader(): HighsLoader {
  const candidate = highsModule.default as unknown;
  if (typeof candidate === "function") return candidate as HighsLoader;
  const nested = (candidate as { default?: unknown } | undefined)?.default;
  if (typeof nested === "function") return nested as HighsLoader;
  throw new Error("highs: could not find the WebAssembly loader export");
}

/** What the placement code needs from a MILP solve: a status and the value of each named column. */
export interface MilpSolution {
  status: "optimal" | "infeasible" | "time-limit" | "error";
  /** HiGHS' own status text, for messages. */
  solverStatus: string;
  objective: number;
  values: Map<string, number>;
}

export interface SolverOptions {
  /** Wall-clock limit per solve; default 30 s. */
  timeLimitSeconds?: number;
  /** Relative MIP gap at which HiGHS stops; default 1e-6. */
  mipRelativeGap?: number;
}

let highsPromise: Promise<LegacyHighs> | undefined;

/** HiGHS compiled to WebAssembly, instantiated once per process. */
function highs(): Promise<LegacyHighs> {
  highsPromise ??= resolveLoader()();
  return highsPromise;
}

/** Solves a model written in CPLEX LP format with HiGHS. */
export async function solveLp(lpText: string, options: SolverOptions = {}): Promise<MilpSolution> {
  const solver = await highs();
  const result = solver.solve(lpText, {
    output_flag: false,
    time_limit: options.timeLimitSeconds ?? 30,
    mip_rel_gap: options.mipRelativeGap ?? 1e-6,
  });
  const values = new Map<string, number>();
  const status = String(result.Status);
  const hasSolution = status === "Optimal" || status === "Time limit reached";
  if (hasSolution) {
    for (const [name, column] of Object.entries(result.Columns)) {
      const primal = column.Primal;
      if (typeof primal === "number") values.set(name, primal);
    }
  }
  const mapped: MilpSolution["status"] =
    status === "Optimal"
      ? "optimal"
      : status === "Infeasible" || status === "Primal infeasible or unbounded"
        ? "infeasible"
        : status === "Time limit reached" && values.size > 0
          ? "time-limit"
          : "error";
  return { status: mapped, solverStatus: status, objective: result.ObjectiveValue, values };
}
