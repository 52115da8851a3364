import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLayoverProcess } from '../../bench/layover-process.js';
import { createSandbox, type Sandbox } from '../../bench/sandbox.js';
import { createTestCa, type TestCa } from '../../bench/test-ca.js';

// A custom domain's own certificate is loaded at start: one that does not fit stops `layover serve`
// with exit code 2 and a message naming the entry, before anything listens.
let sandbox: Sandbox;
let ca: TestCa;
beforeAll(async () => {
  sandbox = await createSandbox();
  ca = await createTestCa(join(sandbox.dir, 'test-ca'));
}, 60_000);
afterAll(() => sandbox?.destroy());

async function startWith(entries: string[]): Promise<string> {
  const config = join(sandbox.dir, `layover-${Date.now()}.yaml`);
  writeFileSync(config, ['customDomains:', ...entries, ''].join('\n'));
  try {
    await startLayoverProcess(sandbox, { flags: { config }, readyTimeoutMs: 15_000 });
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('layover started');
}

describe('custom domain certificates at start', () => {
  it('a certificate and a key that are not a pair stop the start, naming the entry', async () => {
    const a = await ca.issue('pair-a', ['docker.example.test']);
    const b = await ca.issue('pair-b', ['docker.example.test']);
    const message = await startWith([
      '  - {from: other.example.test, to: registry.test}',
      `  - {from: docker.example.test, to: registry.test, certFile: ${a.certFile}, keyFile: ${b.keyFile}}`,
    ]);
    expect(message).toMatch(/layover exited \(2\)/);
    expect(message).toContain(`layover: customDomains entry 2 (docker.example.test): keyFile ${b.keyFile} is not the key of certFile ${a.certFile}`);
  }, 30_000);

  it('a certificate for another name stops the start', async () => {
    const other = await ca.issue('other-name', ['elsewhere.example.test']);
    const message = await startWith([`  - {from: docker.example.test/team, to: registry.test/bench, certFile: ${other.certFile}, keyFile: ${other.keyFile}}`]);
    expect(message).toContain(`customDomains entry 1 (docker.example.test): certFile ${other.certFile} is not valid for docker.example.test`);
  }, 30_000);
});
