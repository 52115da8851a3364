import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Bench, INTERCEPTED_HOST, startBench } from '../../bench/bench.js';
import { podmanRunroot } from '../../bench/podman.js';
import type { LayoverProcessOptions } from '../../bench/layover-process.js';
import { GROUPS, PEOPLE, SERVICE_DN, type Slapd, startSlapd } from '../../helpers/slapd.js';
import { expectNoSecretsInLog } from '../auth/auth-bench.js';
import { dirContents } from '../proxy/dir-compare.js';

// CLIENT_AUTH=ldap end to end: Debian's slapd inside the bench sandbox (127.0.0.7, StartTLS with a
// certificate of the test CA), Layover searching as a service account, then binding as the user;
// skopeo (and podman, with the token service) as clients.
const LDAP_ADDRESS = '127.0.0.7';
const SERVICE_PASSWORD = 'svc-3a8d0e1f';
const CAROL = ['carol', 'carol-pw-6b2d9e'] as const;
const DAVE = ['dave', 'dave-pw-1f7a3c'] as const;
const ERIN = ['erin', 'erin-pw-9c4e2b'] as const;
const SECRETS: Array<string | [string, string]> = [SERVICE_PASSWORD, [...CAROL], [...DAVE], [...ERIN]];

let bench: Bench;
let slapd: Slapd;
let layoverOptions: LayoverProcessOptions;
beforeAll(async () => {
  bench = await startBench({ images: ['oci', 'nested'], layover: false });
  slapd = await startSlapd({
    users: [CAROL, DAVE, ERIN].map(([uid, password]) => ({ uid, password })),
    groups: [
      { cn: 'builders', kind: 'groupOfNames', members: ['carol'] },
      { cn: 'readers', kind: 'posixGroup', members: ['dave'] },
    ],
    servicePassword: SERVICE_PASSWORD,
    ca: bench.ca,
    host: LDAP_ADDRESS,
    ports: { ldap: 389, ldaps: 636 },
    runner: { spawn: (cmd, args) => bench.sandbox.spawn(cmd, args), exec: (cmd, args) => bench.sandbox.exec(cmd, args) },
    parentDir: bench.sandbox.dir,
  });
  const config = join(bench.sandbox.dir, 'ldap.yaml');
  writeFileSync(config, ['accessRules:', '  - {groups: [builders], repositories: ["bench/**", "a/**"], actions: [pull]}', '  - {groups: [readers], repositories: ["a/**"], actions: [pull]}'].join('\n'));
  layoverOptions = {
    flags: { config },
    env: {
      CLIENT_AUTH: 'ldap',
      LDAP_URL: `ldap://${LDAP_ADDRESS}:389`,
      LDAP_STARTTLS: 'true',
      LDAP_CA: bench.ca.certFile,
      LDAP_SEARCH_BASE: PEOPLE,
      LDAP_BIND_DN: SERVICE_DN,
      LDAP_BIND_PASSWORD: SERVICE_PASSWORD,
      LDAP_GROUP_BASE: GROUPS,
    },
  };
  await bench.startLayover(layoverOptions);
}, 180_000);
afterAll(async () => {
  await slapd?.close();
  await bench?.close();
});

const creds = ([user, password]: readonly [string, string]): string => `${user}:${password}`;

describe('client authentication with LDAP (CLIENT_AUTH=ldap), through skopeo', () => {
  it('a member of builders pulls through Layover with --src-creds; a wrong password is unauthorized', async () => {
    const image = bench.images.oci!;
    const via = join(bench.sandbox.dir, 'carol');
    const direct = join(bench.sandbox.dir, 'direct');
    await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), via, { creds: creds(CAROL) });
    await bench.pullDirect(image.ref('registry-direct.test'), direct);
    expect(dirContents(via)).toEqual(dirContents(direct));
    expect(bench.layover!.logs().some((l) => l.msg === 'request' && l.user === 'carol' && l.status === 200)).toBe(true);
    const wrong = await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'wrong'), { allowFailure: true, creds: `${CAROL[0]}:${DAVE[1]}` });
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/unauthorized/i);
    expectNoSecretsInLog(bench, SECRETS);
  }, 120_000);

  it('groups from the directory decide: readers may pull a/** but not bench/**', async () => {
    const denied = await bench.pullViaLayover(bench.images.oci!.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'dave-denied'), { allowFailure: true, creds: creds(DAVE) });
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/denied/i);
    const allowed = join(bench.sandbox.dir, 'dave-allowed');
    await bench.pullViaLayover(bench.images.nested!.ref(INTERCEPTED_HOST), allowed, { creds: creds(DAVE) });
    expect(Object.keys(dirContents(allowed)).length).toBeGreaterThan(2);
  }, 120_000);

  it('with the directory down, a client not remembered gets 503 UNAVAILABLE, not unauthorized', async () => {
    await slapd.stop();
    try {
      const result = await bench.pullViaLayover(bench.images.nested!.ref(INTERCEPTED_HOST), join(bench.sandbox.dir, 'erin-down'), { allowFailure: true, creds: creds(ERIN) });
      expect(result.code).not.toBe(0);
      expect(result.stderr).not.toMatch(/unauthorized/i);
      // The log line is written when the response is; the process's stdout may lag behind skopeo's exit.
      const refused = await bench.layover!.waitForLog((l) => String(l.msg).startsWith('request') && l.clientAuth === 'unavailable');
      expect(refused, result.stderr).toMatchObject({ status: 503, registry: INTERCEPTED_HOST });
      expect(bench.layover!.logs().some((l) => l.msg === 'request' && l.user === 'erin')).toBe(false);
    } finally {
      await slapd.start();
    }
  }, 120_000);
});

describe('the token service (CLIENT_AUTH_CHALLENGE=bearer) with LDAP', () => {
  it('skopeo and podman log in through https://docker.proxy/token and pull', async () => {
    await bench.layover!.stop();
    await bench.startLayover({ ...layoverOptions, env: { ...layoverOptions.env, CLIENT_AUTH_CHALLENGE: 'bearer' } });
    const image = bench.images.oci!;
    const via = join(bench.sandbox.dir, 'carol-bearer');
    await bench.pullViaLayover(image.ref(INTERCEPTED_HOST), via, { creds: creds(CAROL) });
    expect(Object.keys(dirContents(via)).length).toBeGreaterThan(2);

    const podmanDir = join(bench.sandbox.dir, 'podman');
    mkdirSync(join(podmanDir, 'tmp'), { recursive: true });
    writeFileSync(join(podmanDir, 'registries.conf'), '');
    writeFileSync(join(podmanDir, 'auth.json'), '{}');
    const podman = await bench.sandbox.exec(
      'podman',
      [
        '--root', join(podmanDir, 'root'),
        '--runroot', podmanRunroot(bench.sandbox),
        '--tmpdir', join(podmanDir, 'tmp'),
        '--storage-driver', 'vfs',
        '--cgroup-manager', 'cgroupfs',
        '--events-backend', 'file',
        'pull', '--tls-verify=true', '--cert-dir', bench.layover!.certDir, '--creds', creds(CAROL),
        image.ref(INTERCEPTED_HOST),
      ],
      { env: { CONTAINERS_REGISTRIES_CONF: join(podmanDir, 'registries.conf'), REGISTRY_AUTH_FILE: join(podmanDir, 'auth.json'), TMPDIR: join(podmanDir, 'tmp') } },
    );
    expect(podman.code, podman.stderr).toBe(0);

    const logs = bench.layover!.logs().filter((l) => l.msg === 'request');
    expect(logs.filter((l) => l.host === 'docker.proxy' && l.tokenRequest === 'issued' && l.user === 'carol').length).toBeGreaterThanOrEqual(2);
    expect(logs.some((l) => l.host === INTERCEPTED_HOST && l.user === 'carol' && l.status === 200)).toBe(true);
    expectNoSecretsInLog(bench, SECRETS);
    expect(JSON.stringify(bench.layover!.logs()) + bench.layover!.output()).not.toMatch(/eyJ[\w-]{10,}\.eyJ/);
  }, 180_000);
});
