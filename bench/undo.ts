/**
 * What a benchmark has to undo, newest first, each step once: at the end of a part (down to the part's mark), at
 * the run's end, and when interrupted. A step that fails is reported and the others still run; the failures are
 * kept for the run to fail on.
 */
import { describeError } from '../src/common/errors.js';

export class Undo {
  private readonly steps: Array<{ what: string; step: () => unknown }> = [];
  readonly failures: string[] = [];

  get mark(): number {
    return this.steps.length;
  }

  push(what: string, step: () => unknown): void {
    this.steps.push({ what, step });
  }

  async unwind(mark = 0): Promise<void> {
    while (this.steps.length > mark) {
      const { what, step } = this.steps.pop()!;
      try {
        await step();
      } catch (error) {
        this.failures.push(`${what}: ${describeError(error)}`);
        process.stderr.write(`overhead: undoing ${what} failed: ${describeError(error)}\n`);
      }
    }
  }
}

