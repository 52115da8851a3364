/**
 * Answers a fixture server holds back until the test lets them go: `hold(answer)` parks one,
 * `held(n)` waits until n are parked, `release()` sends them all and stops holding new ones.
 *
 *   const gate = new HeldAnswers();
 *   // in the fixture's handler: if (gate.holding) return gate.hold(answer); answer();
 */
export class HeldAnswers {
  holding = false;
  #waiting: Array<() => void> = [];
  #watchers: Array<() => void> = [];

  /** From now on, the fixture parks its answers (see `holding`). */
  start(): void {
    this.holding = true;
  }

  hold(answer: () => void): void {
    this.#waiting.push(answer);
    for (const watch of this.#watchers) watch();
  }

  /** Sends every parked answer and stops holding new ones. */
  release(): void {
    this.holding = false;
    const answers = this.#waiting;
    this.#waiting = [];
    for (const answer of answers) answer();
  }

  /** Resolves once `count` answers are parked. */
  held(count: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const check = (): void => {
        if (this.#waiting.length < count) return;
        this.#watchers = this.#watchers.filter((watch) => watch !== check);
        resolve();
      };
      this.#watchers.push(check);
      check();
    });
  }
}
