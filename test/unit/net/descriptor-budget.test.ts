import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listenerCapWithin, openFileLimit } from '../../../src/net/descriptor-budget.js';

const dir = mkdtempSync(join(tmpdir(), 'layover-limits-file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function limitsFile(openFiles: string): string {
  const file = join(dir, `limits-${openFiles}`);
  writeFileSync(
    file,
    [
      'Limit                     Soft Limit           Hard Limit           Units     ',
      'Max processes             96362                96362                processes ',
      `Max open files            ${openFiles.padEnd(20)} 1048576              files     `,
      '',
    ].join('\n'),
  );
  return file;
}

describe('openFileLimit', () => {
  it('reads the soft limit on open files', () => {
    expect(openFileLimit(limitsFile('20000'))).toBe(20000);
  });

  it('is null when unlimited, or where there is no /proc', () => {
    expect(openFileLimit(limitsFile('unlimited'))).toBeNull();
    expect(openFileLimit(join(dir, 'missing'))).toBeNull();
  });

  it('on this machine, is the limit a child process inherits', () => {
    const shell = Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim());
    expect(openFileLimit()).toBe(shell);
  });
});

describe('listenerCapWithin', () => {
  it('keeps every listener at its cap within half the open-file limit', () => {
    expect(listenerCapWithin(4096, 20000, 3)).toBe(3333);
    expect(listenerCapWithin(4096, 1024, 4)).toBe(128);
    expect(listenerCapWithin(4096, 1_048_576, 3)).toBe(4096);
    expect(listenerCapWithin(4096, 10, 8)).toBe(1);
  });

  it('leaves "no cap" (0) and an unknown limit as they are', () => {
    expect(listenerCapWithin(0, 1024, 3)).toBe(0);
    expect(listenerCapWithin(4096, null, 3)).toBe(4096);
  });
});
