/**
 * File order: vitest's own (failed first, then longest first), except that test/pulumi-gpufleet.test.ts
 * runs after the other cluster files. On a cold machine its Pulumi CLI and provider are still being
 * built in the background (test/setup/cluster.ts) while the cluster files before it run; run first,
 * it would hold the cluster project until that build is done.
 */
import { BaseSequencer, type TestSpecification } from "vitest/node";

const LAST = "/test/pulumi-gpufleet.test.ts";

export class PulumiLastSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const last = (file: TestSpecification): boolean => file.moduleId.replaceAll("\\", "/").endsWith(LAST);
    return [...sorted.filter((file) => !last(file)), ...sorted.filter(last)];
  }
}
