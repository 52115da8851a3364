/**
 * A bcrypt worker that cannot be started (threads or memory exhausted) fails the check that needed
 * it, and the next check starts one again: it must not leave the queue waiting on a check nobody
 * runs (every later sign-in would wait, then get 503, until a restart). node:worker_threads' Worker
 * is wrapped so that its first construction throws; everything else is real.
 */
import bcrypt from 'bcryptjs';
import { describe, expect, it, vi } from 'vitest';

const starts = vi.hoisted(() => ({ failNext: true }));
vi.mock('node:worker_threads', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:worker_threads')>();
  class FirstFails extends real.Worker {
    constructor(...args: ConstructorParameters<typeof real.Worker>) {
      if (starts.failNext) {
        starts.failNext = false;
        throw new Error('ERR_WORKER_INIT_FAILED (as when no thread can be made)');
      }
      super(...args);
    }
  }
  return { ...real, Worker: FirstFails };
});

const { BcryptChecks } = await import('../../../src/client-auth/authenticators/bcrypt-checks.js');

describe('a bcrypt worker that cannot start', () => {
  it('fails the check that needed it with 503, and the next check gets a worker', async () => {
    const checks = new BcryptChecks();
    const hash = bcrypt.hashSync('right', 4);
    await expect(checks.compare('right', hash)).rejects.toMatchObject({ code: 'UNAVAILABLE', status: 503 });
    expect(await checks.compare('right', hash)).toBe(true);
    expect(await checks.compare('wrong', hash)).toBe(false);
    await checks.close();
  });
});
