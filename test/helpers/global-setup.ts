import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The CLI tests run the compiled `layover` command: build it once, fresh, before any test.
 *
 * Tests make temp directories under os.tmpdir(), and the programs they start make more; not every one
 * was removed, and thousands piled up in /tmp over the runs. Each run now gets a TMPDIR of its own,
 * which the test processes and everything they start inherit, removed whole when the run ends.
 */
export default function setup(): () => void {
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
  const previous = process.env.TMPDIR;
  const dir = mkdtempSync(join(tmpdir(), 'layover-tests-'));
  // Like /tmp: some tests run programs as nobody, which must reach their own files in it.
  chmodSync(dir, 0o1777);
  process.env.TMPDIR = dir;
  return () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch (error) {
      // A mount a failed test left behind (EBUSY): the rest is gone; say what stays.
      console.warn(`test run: could not remove all of ${dir}: ${String(error)}`);
    }
  };
}
