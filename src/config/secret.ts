import { inspect } from 'node:util';

const REDACTED = '[redacted]';

/**
 * A credential. It prints, serialises and inspects as `[redacted]`, so a config
 * object can go into a log line or an error message without leaking it; only
 * `reveal()` gives the value, at the one place that sends it upstream.
 */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }
}
