/**
 * Pulumi unit-test mocks (`pulumi.runtime.setMocks`) that record every resource the program
 * registers, so tests can assert on the inputs a real `pulumi up` would send to the providers.
 * No engine, no CLI, no plugin: the program runs in the test process.
 */
import * as pulumi from "@pulumi/pulumi";

/**
 * Resource inputs as the engine received them: arbitrary JSON that tests walk into deeply
 * (`inputs.nodeConfig.guestAccelerators`), asserting with toMatchObject, hence `any`.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type RecordedInputs = Record<string, any>;

export interface RecordedResource {
  type: string;
  name: string;
  inputs: RecordedInputs;
}

export interface RecordingMocks {
  resources: RecordedResource[];
  invokes: Array<{ token: string; inputs: RecordedInputs }>;
  /** Every recorded resource of a type token (e.g. `kubernetes:helm.sh/v3:Release`). */
  ofType(type: string): RecordedResource[];
  /** The one recorded resource of a type and logical name; throws when absent. */
  named(type: string, name: string): RecordedResource;
}

/** Outputs mocked per resource type, added to the echoed inputs (e.g. a Release's status). */
export type MockOutputs = (resource: {
  type: string;
  name: string;
  inputs: RecordedInputs;
}) => Record<string, unknown>;

/** Invoke results by function token (e.g. `aws:index/getAvailabilityZones:getAvailabilityZones`). */
export type MockInvokes = Record<string, (inputs: RecordedInputs) => Record<string, unknown>>;

export function installRecordingMocks(
  options: { outputs?: MockOutputs; invokes?: MockInvokes; stack?: string } = {},
): RecordingMocks {
  const resources: RecordedResource[] = [];
  const invokes: RecordingMocks["invokes"] = [];
  void pulumi.runtime.setMocks(
    {
      newResource(args: pulumi.runtime.MockResourceArgs) {
        resources.push({ type: args.type, name: args.name, inputs: args.inputs as RecordedInputs });
        const extra =
          options.outputs?.({ type: args.type, name: args.name, inputs: args.inputs as RecordedInputs }) ??
          {};
        return { id: `${args.name}-id`, state: { ...args.inputs, ...extra } };
      },
      call(args: pulumi.runtime.MockCallArgs) {
        invokes.push({ token: args.token, inputs: args.inputs as RecordedInputs });
        const handler = options.invokes?.[args.token];
        return handler ? handler(args.inputs as RecordedInputs) : (args.inputs as Record<string, unknown>);
      },
    },
    "gpufleet",
    options.stack ?? "test",
    false,
  );
  return {
    resources,
    invokes,
    ofType: (type) => resources.filter((resource) => resource.type === type),
    named(type, name) {
      const found = resources.find((resource) => resource.type === type && resource.name === name);
      if (!found) {
        throw new Error(
          `no ${type} named ${name}; recorded: ${resources.map((r) => `${r.type}/${r.name}`).join(", ")}`,
        );
      }
      return found;
    },
  };
}

/** The value of an Output once the mocked engine resolved it. */
export function valueOf<T>(output: pulumi.Output<T> | pulumi.Input<T>): Promise<T> {
  return new Promise<T>((resolve) => {
    pulumi.output(output).apply((value) => {
      resolve(value as T);
      return value;
    });
  });
}

/** Waits until every resource in the list is registered (their URNs resolve). */
export async function registered(resources: readonly pulumi.Resource[]): Promise<void> {
  await Promise.all(resources.map((resource) => valueOf(resource.urn)));
}

/**
 * Waits until the program stops registering resources (none new for `quietMs`), for programs whose
 * outputs do not depend on every resource. Bounded: throws after `timeoutMs`.
 */
export async function quiesced(mocks: RecordingMocks, quietMs = 300, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let seen = -1;
  while (seen !== mocks.resources.length) {
    if (Date.now() > deadline) throw new Error(`resources still being registered after ${timeoutMs} ms`);
    seen = mocks.resources.length;
    await new Promise((resolve) => setTimeout(resolve, quietMs));
  }
}
