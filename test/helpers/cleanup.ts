/**
 * For after(): every cleanup step runs even when an earlier one throws (a cgroup still busy must not leave the
 * test's other cgroups, pins and topics behind); what failed is thrown together at the end.
 */
export async function cleanUpAll(steps: ReadonlyArray<readonly [what: string, step: () => unknown]>): Promise<void> {
  const errors: Error[] = [];
  for (const [what, step] of steps) {
    try {
      await step();
    } catch (error) {
      errors.push(new Error(`cleanup: ${what}: ${error instanceof Error ? error.message : String(error)}`, { cause: error }));
    }
  }
  if (errors.length > 0) throw new AggregateError(errors, `${errors.length} cleanup step(s) failed: ${errors.map((error) => error.message).join('; ')}`);
}
