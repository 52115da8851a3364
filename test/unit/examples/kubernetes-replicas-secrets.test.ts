import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { TOKEN_KEY_FILE } from '../../../src/client-auth/token-service/token-key-file.js';
import { loadOrCreateTokenKey } from '../../../src/client-auth/token-service/token-key.js';
import { REDIRECT_KEY_FILE } from '../../../src/proxy/redirects/signed-url.js';
import { httpsGet } from '../../helpers/https-get.js';
import { startLayover } from '../../helpers/start-layover.js';
import { hasProgram } from './example-files.js';
import { containersOf, type KubeObject, type Workload } from './kubernetes-objects.js';
import { envFile, kustomization, makeSecrets, MADE_UP_STORAGE, manifestObjects, redisContainer, REPLICAS_DIR, secretsDir } from './kubernetes-replicas-example.js';

// make-secrets writes what examples/kubernetes/replicas/kustomization.yaml turns into Secrets: the
// shared CA, the shared keys, the bucket and the index. Here it runs for real, its output is loaded by
// a real Layover, and (where kubectl is installed) kustomize builds the example from it.

const tempDir = (): string => mkdtempSync(join(tmpdir(), 'layover-replicas-'));
const run = (args: string[], env: Record<string, string>) =>
  spawnSync(join(REPLICAS_DIR, 'make-secrets'), args, { env: { PATH: process.env.PATH!, ...env }, encoding: 'utf8' });

describe('examples/kubernetes/replicas: make-secrets', () => {
  it('writes every file the kustomization reads, readable by its owner only', () => {
    expect(kustomization.resources.sort()).toEqual(['layover.yaml', 'redis.yaml']);
    const read = kustomization.secretGenerator.flatMap((g) => [...(g.files ?? []), ...(g.envs ?? [])]).map((f) => f.replace(/^secrets\//, ''));
    expect(readdirSync(secretsDir).sort()).toEqual(read.sort());
    for (const file of read) expect(statSync(join(secretsDir, file)).mode & 0o777, file).toBe(0o600);
    expect(readFileSync(join(secretsDir, REDIRECT_KEY_FILE))).toHaveLength(32);
  });

  it('keeps the CA, the keys and the Redis password on a second run, and takes a new bucket', () => {
    const dir = makeSecrets();
    const before = Object.fromEntries(['ca.crt', 'ca.key', REDIRECT_KEY_FILE, TOKEN_KEY_FILE, 'index.env'].map((f) => [f, readFileSync(join(dir, f), 'utf8')]));
    makeSecrets(dir, 's3://other-bucket/layover');
    for (const [file, content] of Object.entries(before)) expect(readFileSync(join(dir, file), 'utf8'), file).toBe(content);
    expect(envFile(readFileSync(join(dir, 'storage.env'), 'utf8')).BLOB_STORE).toBe('s3://other-bucket/layover');
  });

  it('refuses a blob store that is not a bucket, missing credentials, and half a CA', () => {
    const notBucket = run(['file'], { ...MADE_UP_STORAGE.env, SECRETS_DIR: tempDir() });
    expect(notBucket.status).toBe(2);
    expect(notBucket.stderr).toContain('expected s3://bucket/prefix');
    const noCredentials = run([MADE_UP_STORAGE.blobStore], { SECRETS_DIR: tempDir() });
    expect(noCredentials.status).not.toBe(0);
    expect(noCredentials.stderr).toContain('AWS_ACCESS_KEY_ID');
    const half = tempDir();
    copyFileSync(join(secretsDir, 'ca.crt'), join(half, 'ca.crt'));
    const halfCa = run([MADE_UP_STORAGE.blobStore], { ...MADE_UP_STORAGE.env, SECRETS_DIR: half });
    expect(halfCa.status).toBe(2);
    expect(halfCa.stderr).toContain('only one of ca.crt and ca.key');
    expect(readdirSync(half)).toEqual(['ca.crt']);
  });

  it('writes a CA, keys and an index URL that Layover loads as they are, writing nothing into the CA directory', async () => {
    const caDir = tempDir();
    for (const file of ['ca.crt', 'ca.key']) copyFileSync(join(secretsDir, file), join(caDir, file));
    const dataDir = tempDir();
    for (const file of [REDIRECT_KEY_FILE, TOKEN_KEY_FILE]) copyFileSync(join(secretsDir, file), join(dataDir, file));
    const layover = await startLayover({ 'ca-dir': caDir, 'data-dir': dataDir });
    onTestFinished(() => layover.close());
    expect(layover.app.ca.certPem).toBe(readFileSync(join(caDir, 'ca.crt'), 'utf8'));
    // A leaf minted by that CA, checked by a real TLS handshake that trusts only ca.crt.
    const answer = await httpsGet(layover.addresses.https.port, 'docker.proxy', '/readyz', readFileSync(join(caDir, 'ca.crt'), 'utf8'));
    expect(answer.status).toBe(200);
    // The Secret volume is read-only: Layover must not need to write there.
    expect(readdirSync(caDir).sort()).toEqual(['ca.crt', 'ca.key']);
    expect(readFileSync(join(dataDir, REDIRECT_KEY_FILE))).toEqual(readFileSync(join(secretsDir, REDIRECT_KEY_FILE)));
    await expect(loadOrCreateTokenKey(join(dataDir, TOKEN_KEY_FILE))).resolves.toMatchObject({ kid: expect.any(String) });
    const index = envFile(readFileSync(join(secretsDir, 'index.env'), 'utf8'));
    expect(new URL(index.CACHE_INDEX!).password).toBe(index.REDIS_PASSWORD);
  });
});

describe.runIf(hasProgram('kubectl'))('examples/kubernetes/replicas: kustomize build', () => {
  const dir = tempDir();
  cpSync(REPLICAS_DIR, join(dir, 'replicas'), { recursive: true, filter: (source) => !source.endsWith('/secrets') });
  mkdirSync(join(dir, 'replicas', 'secrets'));
  makeSecrets(join(dir, 'replicas', 'secrets'));
  const built = parseAllDocuments(execFileSync('kubectl', ['kustomize', join(dir, 'replicas')], { encoding: 'utf8' })).map((d) => d.toJS() as KubeObject & { data?: Record<string, string> });
  const unhashed = (name: string): string => name.replace(/-[a-z0-9]{10}$/, '');

  it('builds the manifests\' objects plus one Secret per generator', () => {
    const key = (o: KubeObject, name = o.metadata.name): string => `${o.kind}/${o.metadata.namespace ?? ''}/${name}`;
    const expected = [...manifestObjects.map((o) => key(o)), ...kustomization.secretGenerator.map((g) => `Secret/${g.namespace}/${g.name}`)];
    expect(built.map((o) => key(o, o.kind === 'Secret' ? unhashed(o.metadata.name) : o.metadata.name)).sort()).toEqual(expected.sort());
  });

  it('rewrites every Secret reference to the generated name, and the Secrets hold the files\' bytes', () => {
    const secrets = new Map(built.filter((o) => o.kind === 'Secret').map((o) => [o.metadata.name, o.data!]));
    for (const w of built.filter((o): o is Workload & { data?: Record<string, string> } => o.kind === 'Deployment' || o.kind === 'StatefulSet')) {
      const spec = w.spec.template.spec;
      const named = [
        ...(spec.volumes ?? []).flatMap((v) => (v.secret ? [v.secret.secretName] : [])),
        ...containersOf(spec).flatMap((c) => [...(c.envFrom ?? []).flatMap((f) => (f.secretRef ? [f.secretRef.name] : [])), ...(c.env ?? []).flatMap((e) => (e.valueFrom?.secretKeyRef ? [e.valueFrom.secretKeyRef.name] : []))]),
      ];
      for (const name of named) expect([...secrets.keys()], `${w.metadata.name}: ${name}`).toContain(name);
    }
    const keys = [...secrets.entries()].find(([name]) => unhashed(name) === 'layover-keys')![1];
    expect(Buffer.from(keys[REDIRECT_KEY_FILE]!, 'base64')).toEqual(readFileSync(join(dir, 'replicas', 'secrets', REDIRECT_KEY_FILE)));
  });
});

// Redis binds every address on 6379 as the manifest starts it: only in a network namespace of the test's own.
describe.runIf(hasProgram('redis-server') && hasProgram('unshare') && process.getuid?.() === 0)('examples/kubernetes/replicas: the Redis command', () => {
  it('starts Redis with the generated password, refusing clients without it', () => {
    const dataDir = tempDir();
    const [shell, flag, command] = redisContainer.command!;
    expect([shell, flag]).toEqual(['sh', '-c']);
    // The data volume's path, here a temp dir.
    const local = command!.replace('--dir /data', `--dir ${dataDir}`);
    const probe = [
      'ip link set lo up',
      'sh -c "$REDIS_COMMAND" >/dev/null 2>&1 &',
      'for _ in $(seq 100); do redis-cli -a "$REDIS_PASSWORD" --no-auth-warning ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done',
      'echo "anonymous: $(redis-cli ping 2>&1)"',
      'echo "with password: $(redis-cli -a "$REDIS_PASSWORD" --no-auth-warning ping 2>&1)"',
      'redis-cli -a "$REDIS_PASSWORD" --no-auth-warning shutdown nosave >/dev/null 2>&1; wait',
    ].join('\n');
    const password = envFile(readFileSync(join(secretsDir, 'index.env'), 'utf8')).REDIS_PASSWORD!;
    const result = spawnSync('unshare', ['--net', 'sh', '-c', probe], { env: { PATH: process.env.PATH!, REDIS_COMMAND: local, REDIS_PASSWORD: password }, encoding: 'utf8', timeout: 60_000 });
    expect(result.stdout).toContain('anonymous: NOAUTH');
    expect(result.stdout).toContain('with password: PONG');
  });
});
