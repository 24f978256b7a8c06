/**
 * What a benchmark has to undo, newest first, each step once: at the end of a part (down to the part's mark), at
 * the run's end, and when interrupted. A step that fails is reported and the others still run; the failures are
 * kept for the run to fail on.
 */
import { describeError } from '../src/common/errors.js';

export class Undo {
  private readonly steps: Array<{ what: string; step: () => unknown }> = [];
  readonly failures: string[] = [];
  private unwinding = Promise.resolve();

  get mark(): number {
    return this.steps.length;
  }

  push(what: string, step: () => unknown): void {
    this.steps.push({ what, step });
  }

  /** Runs the steps above `mark`; a call while another unwinds waits for it (a signal during a mode's end). */
  unwind(mark = 0): Promise<void> {
    this.unwinding = this.unwinding.then(() => this.runSteps(mark));
    return this.unwinding;
  }

  private async runSteps(mark: number): Promise<void> {
    while (this.steps.length > mark) {
      const { what, step } = this.steps.pop()!;
      try {
        await step();
      } catch (error) {
        this.failures.push(`${what}: ${describeError(error)}`);
        process.stderr.write(`undoing ${what} failed: ${describeError(error)}\n`);
      }
    }
  }
}
