import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Bench, INTERCEPTED_HOST, startBench } from '../../bench/bench.js';
import { copyToDir } from '../../bench/skopeo.js';
import { expectNoSecretsInLog } from '../auth/auth-bench.js';
import { dirContents } from '../proxy/dir-compare.js';

// The authenticating registry front: docker.example.test has its own login (CLIENT_AUTH=htpasswd),
// its own certificate (from the bench's test CA, not Layover's: clients trust only that), and
// serves registry.test/bench/* (which needs Layover's upstream credential) as team/app/*.
const DOMAIN = 'docker.example.test';
const UPSTREAM = ['pusher', randomBytes(12).toString('hex')] as const;
const CAROL = ['carol', randomBytes(12).toString('hex')] as const;
const SECRETS: Array<[string, string]> = [[...UPSTREAM], [...CAROL]];
/** The start of every token Layover signs (`{"alg":"ES256","typ":"JWT"`, base64url): none may reach the log. */
const LAYOVER_JWT = 'eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIs';

let bench: Bench;
let layoverEnv: Record<string, string>;
let layoverFlags: Record<string, string>;
beforeAll(async () => {
  bench = await startBench({ images: ['oci', 'nested'], auth: { htpasswd: { [UPSTREAM[0]]: UPSTREAM[1] } }, layover: false });
  const own = await bench.ca.issue('docker-example', [DOMAIN]);
  const htpasswd = join(bench.sandbox.dir, 'clients.htpasswd');
  writeFileSync(htpasswd, `${execFileSync('htpasswd', ['-Bbn', '-C', '5', ...CAROL], { encoding: 'utf8' }).trim()}\n`);
  const config = join(bench.sandbox.dir, 'layover.yaml');
  writeFileSync(
    config,
    [
      'customDomains:',
      `  - {from: ${DOMAIN}/team/app, to: registry.test/bench, certFile: ${own.certFile}, keyFile: ${own.keyFile}}`,
      `  - {from: ${DOMAIN}/deep, to: registry.test/a/b, certFile: ${own.certFile}, keyFile: ${own.keyFile}}`,
      'accessRules:',
      `  - {users: [carol], registries: [${DOMAIN}], repositories: ["team/app/**"], actions: [pull]}`,
      '',
    ].join('\n'),
  );
  layoverFlags = { config };
  layoverEnv = { CLIENT_AUTH: 'htpasswd', HTPASSWD_FILE: htpasswd, AUTH_REGISTRIES: `${INTERCEPTED_HOST}:${UPSTREAM[0]}:${UPSTREAM[1]}` };
  await bench.startLayover({ flags: layoverFlags, env: layoverEnv });
}, 180_000);
afterAll(() => bench?.close());

/** skopeo trusting only the test CA, which signed the domain's own certificate (not Layover's CA). */
const pull = (ref: string, dest: string, creds?: string) =>
  copyToDir(bench.sandbox, `docker://${ref}`, join(bench.sandbox.dir, dest), { certDir: bench.ca.trustDir, allowFailure: true, ...(creds ? { creds } : {}) });

describe('a custom domain with its own login and certificate', () => {
  it("serves the operator's certificate: a client that trusts only that CA pulls, with its Layover login", async () => {
    const image = bench.images.oci!;
    const result = await pull(`${DOMAIN}/team/app/oci:${image.tag}`, 'carol-oci', `${CAROL[0]}:${CAROL[1]}`);
    expect(result.code, result.stderr).toBe(0);
    expect(dirContents(join(bench.sandbox.dir, 'carol-oci'))['manifest.json']?.toString()).toBe(image.raw);
    const lines = bench.layover!.logs().filter((l) => l.msg === 'request' && l.host === DOMAIN && l.user === CAROL[0] && l.digest);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.every((l) => l.credential === `${UPSTREAM[0]}@${INTERCEPTED_HOST}` || l.cache === 'hit')).toBe(true);
  }, 120_000);

  it('asks for the login first, and the policy judges the domain and the client names', async () => {
    const anonymous = await pull(`${DOMAIN}/team/app/oci:v1`, 'anonymous');
    expect(anonymous.code).not.toBe(0);
    expect(anonymous.stderr).toMatch(/unauthorized/i);
    const outside = await pull(`${DOMAIN}/deep/c:v1`, 'carol-deep', `${CAROL[0]}:${CAROL[1]}`);
    expect(outside.code).not.toBe(0);
    expect(outside.stderr).toMatch(/denied/i);
    // Her rule names the custom domain: the same repository under the registry's own name is not hers.
    const direct = await copyToDir(bench.sandbox, `docker://${bench.images.oci!.ref(INTERCEPTED_HOST)}`, join(bench.sandbox.dir, 'carol-host'), {
      certDir: bench.layover!.certDir,
      creds: `${CAROL[0]}:${CAROL[1]}`,
      allowFailure: true,
    });
    expect(direct.code).not.toBe(0);
    expect(direct.stderr).toMatch(/denied/i);
    expectNoSecretsInLog(bench, SECRETS);
  }, 120_000);
});

describe('the same domain with CLIENT_AUTH_CHALLENGE=bearer: Layover is the token service on the domain itself', () => {
  beforeAll(async () => {
    await bench.layover!.stop();
    await bench.startLayover({ flags: layoverFlags, env: { ...layoverEnv, CLIENT_AUTH_CHALLENGE: 'bearer' } });
  }, 60_000);

  it('skopeo, trusting only the domain certificate\'s CA (so never docker.proxy), gets its token from the domain and pulls', async () => {
    const image = bench.images.oci!;
    const result = await pull(`${DOMAIN}/team/app/oci:${image.tag}`, 'carol-bearer', `${CAROL[0]}:${CAROL[1]}`);
    expect(result.code, result.stderr).toBe(0);
    expect(dirContents(join(bench.sandbox.dir, 'carol-bearer'))['manifest.json']?.toString()).toBe(image.raw);
    const requests = bench.layover!.logs().filter((l) => l.msg === 'request');
    const issued = requests.filter((l) => l.host === DOMAIN && String(l.url).startsWith('/token?') && l.tokenRequest === 'issued');
    expect(issued.length).toBeGreaterThan(0);
    expect(issued.every((l) => l.user === CAROL[0] && l.service === DOMAIN && l.granted === 'repository:team/app/oci:pull')).toBe(true);
    // The registry requests came with Layover's token (no credential check left to do), for her.
    const pulls = requests.filter((l) => l.host === DOMAIN && l.digest);
    expect(pulls.length).toBeGreaterThan(0);
    expect(pulls.every((l) => l.user === CAROL[0] && l.status === 200)).toBe(true);
    expect(requests.filter((l) => String(l.host).startsWith('docker.proxy'))).toEqual([]);
    expectNoSecretsInLog(bench, [...SECRETS, LAYOVER_JWT]);
  }, 120_000);

  it('without the login: 401 with a Bearer challenge on the domain; outside her rule: denied', async () => {
    const anonymous = await pull(`${DOMAIN}/team/app/oci:v1`, 'anonymous-bearer');
    expect(anonymous.code).not.toBe(0);
    expect(anonymous.stderr).toMatch(/unauthorized/i);
    const challenged = bench.layover!.logs().find((l) => l.msg === 'request' && l.host === DOMAIN && l.status === 401 && l.clientAuth === 'missing');
    expect(challenged).toBeDefined();
    const outside = await pull(`${DOMAIN}/deep/c:v1`, 'carol-deep-bearer', `${CAROL[0]}:${CAROL[1]}`);
    expect(outside.code).not.toBe(0);
    expect(outside.stderr).toMatch(/denied/i);
    expectNoSecretsInLog(bench, [...SECRETS, LAYOVER_JWT]);
  }, 120_000);
});
