import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Bench, INTERCEPTED_HOST, startBench } from '../../bench/bench.js';
import { startContainerd } from '../../bench/containerd.js';
import { podmanIn } from '../../bench/podman.js';
import { runCli } from '../../helpers/run-cli.js';
import { expectNoSecretsInLog } from '../auth/auth-bench.js';

// Mirror clients of a Layover that is their token service (CLIENT_AUTH=htpasswd,
// CLIENT_AUTH_CHALLENGE=bearer). They reach it as 127.0.0.1 only: no DNS for anything (so neither
// registry.test nor docker.proxy resolves), and Layover's challenges must send them to
// https://127.0.0.1/token, whose tokens are for 127.0.0.1. The upstream needs Layover's own
// credential; carol may pull bench/* of registry.test and nothing else.
const UPSTREAM = ['pusher', randomBytes(12).toString('hex')] as const;
const CAROL = ['carol', randomBytes(12).toString('hex')] as const;
const SECRETS: Array<string | [string, string]> = [[...UPSTREAM], [...CAROL], 'eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIs'];

let bench: Bench;
let noDns: string;
beforeAll(async () => {
  bench = await startBench({ images: ['oci', 'nested'], auth: { htpasswd: { [UPSTREAM[0]]: UPSTREAM[1] } }, layover: false });
  const htpasswd = join(bench.sandbox.dir, 'clients.htpasswd');
  writeFileSync(htpasswd, `${execFileSync('htpasswd', ['-Bbn', '-C', '5', ...CAROL], { encoding: 'utf8' }).trim()}\n`);
  const config = join(bench.sandbox.dir, 'layover.yaml');
  writeFileSync(config, ['accessRules:', `  - {users: [carol], registries: [${INTERCEPTED_HOST}], repositories: ["bench/**"], actions: [pull]}`, ''].join('\n'));
  await bench.startLayover({
    flags: { config },
    env: { CLIENT_AUTH: 'htpasswd', HTPASSWD_FILE: htpasswd, CLIENT_AUTH_CHALLENGE: 'bearer', AUTH_REGISTRIES: `${INTERCEPTED_HOST}:${UPSTREAM[0]}:${UPSTREAM[1]}` },
  });
  noDns = join(bench.sandbox.dir, 'resolv.nothing.conf');
  writeFileSync(noDns, 'nameserver 127.0.0.9\noptions timeout:1 attempts:1\n');
}, 180_000);
afterAll(() => bench?.close());

const layoverFlags = (): string[] => ['--data-dir', bench.layover!.dataDir, '--advertise', '127.0.0.1', '--upstream-dns', '127.0.0.1:9', '--registries', INTERCEPTED_HOST];
const requests = () => bench.layover!.logs().filter((l) => l.msg === 'request');

describe('containerd (?ns=) with CLIENT_AUTH_CHALLENGE=bearer', () => {
  it('logs in with the OAuth2 POST at https://127.0.0.1/token?ns=… and pulls with the token', async () => {
    const hostsDir = join(bench.sandbox.dir, 'certs.d');
    expect(runCli(['containerd-config', ...layoverFlags(), '--dir', hostsDir]).status).toBe(0);
    const image = bench.images.oci!;
    const containerd = await startContainerd(bench.sandbox);
    const pull = (ref: string, user: readonly [string, string]) =>
      containerd.ctr(['images', 'pull', '--user', `${user[0]}:${user[1]}`, '--hosts-dir', hostsDir, '--snapshotter', 'native', '--platform', 'linux/amd64', ref], { resolvConf: noDns, allowFailure: true });
    const pulled = await pull(image.ref(INTERCEPTED_HOST), CAROL);
    expect(pulled.code, pulled.stderr).toBe(0);

    const issued = requests().filter((l) => l.host === '127.0.0.1' && String(l.url) === `/token?ns=${INTERCEPTED_HOST}` && l.tokenRequest === 'issued');
    expect(issued.length).toBeGreaterThan(0);
    expect(issued.every((l) => l.method === 'POST' && l.user === CAROL[0] && l.service === '127.0.0.1' && l.registry === INTERCEPTED_HOST)).toBe(true);
    const blobs = requests().filter((l) => l.via === 'ns' && l.digest);
    expect(blobs.length).toBeGreaterThan(0);
    expect(blobs.every((l) => l.user === CAROL[0] && l.status === 200 && l.registry === INTERCEPTED_HOST)).toBe(true);

    // The policy judges the registry and repository the client names: a/b/c is not hers.
    const denied = await pull(bench.images.nested!.ref(INTERCEPTED_HOST), CAROL);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/denied|403/i);
    const wrong = await pull(image.ref(INTERCEPTED_HOST), [CAROL[0], 'not-her-password']);
    expect(wrong.code).not.toBe(0);
    await containerd.stop();
    expectNoSecretsInLog(bench, [...SECRETS, [CAROL[0], 'not-her-password']]);
  }, 180_000);
});

describe('podman (path prefix) with CLIENT_AUTH_CHALLENGE=bearer', () => {
  it('logs in to the mirror name, gets its token at https://127.0.0.1/token and pulls', async () => {
    const printed = runCli(['registries-conf', ...layoverFlags()]);
    expect(printed.status, printed.stderr).toBe(0);
    const conf = join(bench.sandbox.dir, 'registries.conf');
    writeFileSync(conf, printed.stdout);
    const certDir = bench.layover!.certDir;
    const podman = podmanIn(bench.sandbox);
    const login = await podman.run(['login', '--cert-dir', certDir, '--username', CAROL[0], '--password', CAROL[1], '127.0.0.1'], { registriesConf: conf, resolvConf: noDns });
    expect(login.stdout).toMatch(/Login Succeeded/i);

    const image = bench.images.oci!;
    const before = requests().length;
    await podman.pull(image.ref(INTERCEPTED_HOST), { registriesConf: conf, certDir, resolvConf: noDns });
    const listed = await podman.run(['images', '--format', '{{.Repository}}:{{.Tag}} {{.Digest}}'], { registriesConf: conf });
    expect(listed.stdout).toContain(`${INTERCEPTED_HOST}/${image.repository}:${image.tag} ${image.digest}`);

    const lines = requests().slice(before);
    const issued = lines.filter((l) => l.host === '127.0.0.1' && String(l.url).startsWith('/token?') && l.tokenRequest === 'issued');
    expect(issued.length).toBeGreaterThan(0);
    expect(issued.every((l) => l.method === 'GET' && l.user === CAROL[0] && l.service === '127.0.0.1')).toBe(true);
    expect(issued.some((l) => l.granted === `repository:${INTERCEPTED_HOST}/${image.repository}:pull`)).toBe(true);
    const viaPath = lines.filter((l) => l.via === 'path' && l.digest);
    expect(viaPath.length).toBeGreaterThan(0);
    expect(viaPath.every((l) => l.user === CAROL[0] && l.registry === INTERCEPTED_HOST && l.repo === image.repository)).toBe(true);
    expect(lines.filter((l) => String(l.host).startsWith('docker.proxy'))).toEqual([]);

    const denied = await podman.pull(bench.images.nested!.ref(INTERCEPTED_HOST), { registriesConf: conf, certDir, resolvConf: noDns, allowFailure: true });
    expect(denied.code).not.toBe(0);
    expectNoSecretsInLog(bench, SECRETS);
  }, 180_000);
});
