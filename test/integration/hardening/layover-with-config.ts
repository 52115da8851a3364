/**
 * In-process Layover (buildApp on loopback, no DNS listener) started from config-file lines, for
 * the client-authentication hardening tests; it and its temp dir go when the test finishes. Its
 * upstream resolver is a closed port: a request that passes client authentication ends in 503
 * UNAVAILABLE, one refused before never gets that far.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';
import { type RunningLayover, startLayover } from '../../helpers/start-layover.js';

export async function startLayoverWithConfig(lines: string[], env: NodeJS.ProcessEnv = {}): Promise<RunningLayover> {
  const dir = mkdtempSync(join(tmpdir(), 'layover-hardening-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'layover.yaml');
  writeFileSync(file, [...lines, ''].join('\n'));
  const layover = await startLayover({ config: file, 'data-dir': join(dir, 'data'), dns: 'off' }, env);
  onTestFinished(() => layover.close());
  return layover;
}
