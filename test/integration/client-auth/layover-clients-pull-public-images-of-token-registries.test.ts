import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { INTERCEPTED_HOST } from '../../bench/bench.js';
import { startTokenBench, type TokenBench } from '../auth/auth-bench.js';
import { dirContents } from '../proxy/dir-compare.js';

// With CLIENT_AUTH, a client's credentials are Layover's and no upstream challenge reaches it: for a
// registry in token mode that Layover holds no credential for (Docker Hub, ghcr.io, quay.io without
// AUTH_REGISTRIES), Layover must fetch the anonymous token itself, or nobody could pull its public
// images. The token server gives anonymous pulls of bench/*, nothing of a/*.
const PUSHER = ['pusher', randomBytes(12).toString('hex')] as const;
const CAROL = ['carol', randomBytes(12).toString('hex')] as const;

let t: TokenBench;
beforeAll(async () => {
  t = await startTokenBench(
    { [PUSHER[0]]: { password: PUSHER[1], grants: { '': ['pull', 'push'] } }, '': { password: '', grants: { 'bench/': ['pull'] } } },
    { images: ['oci', 'nested'], layover: false },
  );
  const htpasswd = join(t.bench.sandbox.dir, 'clients.htpasswd');
  writeFileSync(htpasswd, execFileSync('htpasswd', ['-Bbn', '-C', '5', ...CAROL], { encoding: 'utf8' }));
  await t.bench.startLayover({ env: { CLIENT_AUTH: 'htpasswd', HTPASSWD_FILE: htpasswd } });
}, 180_000);
afterAll(() => t?.bench.close());

it('pulls a public image for a client it authenticated, with an anonymous token of its own', async () => {
  const { bench } = t;
  const image = bench.images.oci!;
  const via = join(bench.sandbox.dir, 'carol');
  const direct = join(bench.sandbox.dir, 'direct');
  await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), via, { creds: CAROL.join(':') });
  await bench.pullDirect(image.ref('registry-direct.test'), direct, { creds: PUSHER.join(':') });
  expect(dirContents(via)).toEqual(dirContents(direct));
  const ours = t.tokenRequests().filter((line) => line.agent === 'layover');
  expect(ours.length).toBeGreaterThan(0);
  expect(ours.every((line) => line.account === '')).toBe(true);
  expect(ours.flatMap((line) => line.scopes ?? [])).toContain(`repository:${image.repository}:pull`);
}, 120_000);

it('refuses an image the anonymous token does not reach, naming the registry', async () => {
  const { bench } = t;
  const result = await bench.pullViaLayover(bench.images.nested!.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'private'), { creds: CAROL.join(':'), allowFailure: true });
  expect(result.code).not.toBe(0);
  expect(result.stderr).toMatch(new RegExp(`(unauthorized|denied).*${INTERCEPTED_HOST.replace('.', '\\.')}`, 'i'));
}, 120_000);
