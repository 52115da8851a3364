/**
 * Debian's real OpenLDAP server (slapd 2.5) for the LDAP client-authentication tests: a temp dir
 * with a slapd.conf (mdb backend, suffix dc=example,dc=test, modules from /usr/lib/ldap), loaded
 * offline with slapadd (passwords hashed {SSHA} by slappasswd), run in the foreground
 * (`slapd -d 0`) as a child process on loopback, ldap:// and, with a test CA, ldaps:// (StartTLS
 * works on the ldap:// port then too).
 *
 *   ou=people    uid=<user>, inetOrgPerson with userPassword
 *   ou=groups    cn=<group>, groupOfNames (member: the user's DN) or posixGroup (memberUid: uid)
 *   ou=services  cn=layover, the account that may search (LDAP_BIND_DN)
 *
 * Only authenticated binds may read people and groups; anonymous clients may only bind, so a
 * search that forgot to bind as the service account finds nobody. Every test closes what it
 * started (`close()`: slapd stopped, the directory removed).
 */
import { type ChildProcess, spawn as spawnChild } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestCa } from '../bench/test-ca.js';
import { freeLoopbackPort } from './server-process.js';

export const SUFFIX = 'dc=example,dc=test';
export const PEOPLE = `ou=people,${SUFFIX}`;
export const GROUPS = `ou=groups,${SUFFIX}`;
export const SERVICE_DN = `cn=layover,ou=services,${SUFFIX}`;

export interface SlapdUser {
  uid: string;
  password: string;
}

export interface SlapdGroup {
  cn: string;
  kind: 'groupOfNames' | 'posixGroup';
  /** uids of members. */
  members: string[];
}

/** Where slapd and its tools run: this host (default), or a bench sandbox (its spawn and exec fit). */
export interface SlapdRunner {
  spawn(cmd: string, args: string[]): ChildProcess;
  exec(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

export interface SlapdOptions {
  users: SlapdUser[];
  groups?: SlapdGroup[];
  /** Password of the service account SERVICE_DN. */
  servicePassword: string;
  /** Also ldaps://, with a certificate for `host` from this CA. */
  ca?: TestCa;
  /** slapd's `allow bind_anon_dn`: a DN with an empty password binds (an "unauthenticated bind"). */
  allowUnauthenticatedBind?: boolean;
  /** Default 127.0.0.1 with free ports; in a sandbox, say 127.0.0.7 with 389 and 636. */
  host?: string;
  ports?: { ldap: number; ldaps: number };
  runner?: SlapdRunner;
  /** Where the temp dir goes (default the OS temp dir). */
  parentDir?: string;
}

export interface Slapd {
  readonly url: string;
  /** null without a CA. */
  readonly ldapsUrl: string | null;
  userDn(uid: string): string;
  /** Stops slapd: its ports are closed afterwards. */
  stop(): Promise<void>;
  /** Starts it again on the same ports and data. */
  start(): Promise<void>;
  /** stop() and remove the directory. */
  close(): Promise<void>;
}

const localRunner: SlapdRunner = {
  spawn: (cmd, args) => spawnChild(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }),
  async exec(cmd, args) {
    const child = spawnChild(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const [code] = (await once(child, 'close')) as [number | null];
    return { code, stdout, stderr };
  },
};

async function run(runner: SlapdRunner, cmd: string, args: string[]): Promise<string> {
  const result = await runner.exec(cmd, args);
  if (result.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
  return result.stdout;
}

function config(dir: string, options: SlapdOptions, tls: { cert: string; key: string; ca: string } | null): string {
  return [
    ...['core', 'cosine', 'inetorgperson', 'nis'].map((schema) => `include /etc/ldap/schema/${schema}.schema`),
    'modulepath /usr/lib/ldap',
    'moduleload back_mdb',
    `pidfile ${join(dir, 'slapd.pid')}`,
    `argsfile ${join(dir, 'slapd.args')}`,
    ...(options.allowUnauthenticatedBind ? ['allow bind_anon_dn'] : []),
    ...(tls ? [`TLSCACertificateFile ${tls.ca}`, `TLSCertificateFile ${tls.cert}`, `TLSCertificateKeyFile ${tls.key}`] : []),
    'database mdb',
    `suffix "${SUFFIX}"`,
    `rootdn "cn=admin,${SUFFIX}"`,
    `directory ${join(dir, 'db')}`,
    'maxsize 16777216',
    'access to attrs=userPassword by self read by anonymous auth by * none',
    'access to * by users read by anonymous auth by * none',
    '',
  ].join('\n');
}

/** A uid as a DN value: the special characters of RFC 4514 with a backslash (test users avoid the rest). */
const dnValue = (uid: string): string => uid.replace(/[,+"\\<>;=]/g, '\\$&');

async function ldif(options: SlapdOptions, runner: SlapdRunner): Promise<string> {
  const hash = async (password: string): Promise<string> => (await run(runner, 'slappasswd', ['-h', '{SSHA}', '-s', password])).trim();
  const entries = [
    [`dn: ${SUFFIX}`, 'objectClass: dcObject', 'objectClass: organization', 'o: Layover tests', 'dc: example'],
    ...['people', 'groups', 'services'].map((ou) => [`dn: ou=${ou},${SUFFIX}`, 'objectClass: organizationalUnit', `ou: ${ou}`]),
    [`dn: ${SERVICE_DN}`, 'objectClass: organizationalRole', 'objectClass: simpleSecurityObject', 'cn: layover', `userPassword: ${await hash(options.servicePassword)}`],
  ];
  for (const user of options.users) {
    entries.push([`dn: uid=${dnValue(user.uid)},${PEOPLE}`, 'objectClass: inetOrgPerson', `uid: ${user.uid}`, `cn: ${user.uid}`, `sn: ${user.uid}`, `userPassword: ${await hash(user.password)}`]);
  }
  (options.groups ?? []).forEach((group, index) => {
    const members = group.kind === 'groupOfNames' ? group.members.map((uid) => `member: uid=${dnValue(uid)},${PEOPLE}`) : group.members.map((uid) => `memberUid: ${uid}`);
    const kind = group.kind === 'groupOfNames' ? ['objectClass: groupOfNames'] : ['objectClass: posixGroup', `gidNumber: ${10_000 + index}`];
    entries.push([`dn: cn=${group.cn},${GROUPS}`, ...kind, `cn: ${group.cn}`, ...members]);
  });
  return `${entries.map((lines) => lines.join('\n')).join('\n\n')}\n`;
}

export async function startSlapd(options: SlapdOptions): Promise<Slapd> {
  const runner = options.runner ?? localRunner;
  const host = options.host ?? '127.0.0.1';
  const dir = mkdtempSync(join(options.parentDir ?? tmpdir(), 'layover-slapd-'));
  let child: ChildProcess | null = null;
  try {
    mkdirSync(join(dir, 'db'));
    let tls: { cert: string; key: string; ca: string } | null = null;
    if (options.ca) {
      const issued = await options.ca.issue('slapd', [host]);
      tls = { cert: issued.certFile, key: issued.keyFile, ca: options.ca.certFile };
    }
    const conf = join(dir, 'slapd.conf');
    writeFileSync(conf, config(dir, options, tls));
    writeFileSync(join(dir, 'data.ldif'), await ldif(options, runner));
    await run(runner, 'slapadd', ['-f', conf, '-l', join(dir, 'data.ldif')]);

    const ports = options.ports ?? { ldap: await freeLoopbackPort(host), ldaps: await freeLoopbackPort(host) };
    const url = `ldap://${host}:${ports.ldap}`;
    const ldapsUrl = tls ? `ldaps://${host}:${ports.ldaps}` : null;
    const start = async (): Promise<void> => {
      const listen = [`${url}/`, ...(ldapsUrl ? [`${ldapsUrl}/`] : [])].join(' ');
      const started = runner.spawn('slapd', ['-d', '0', '-h', listen, '-f', conf]);
      child = started;
      let output = '';
      started.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
      started.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
      // Ready when an anonymous read of the root DSE answers.
      for (const deadline = Date.now() + 15_000; ; ) {
        if (started.exitCode !== null) throw new Error(`slapd exited (${started.exitCode}): ${output}`);
        const probe = await runner.exec('ldapsearch', ['-x', '-H', url, '-b', '', '-s', 'base', '-LLL', 'namingContexts']);
        if (probe.code === 0) return;
        if (Date.now() > deadline) throw new Error(`slapd did not answer within 15 s: ${output}${probe.stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    const stop = async (): Promise<void> => {
      const running = child;
      child = null;
      if (!running || running.exitCode !== null || running.signalCode !== null) return;
      const exited = once(running, 'exit');
      running.kill('SIGTERM');
      const timer = setTimeout(() => running.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    };
    await start();
    return {
      url,
      ldapsUrl,
      userDn: (uid) => `uid=${dnValue(uid)},${PEOPLE}`,
      stop,
      start,
      async close() {
        await stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    const running = child as ChildProcess | null;
    running?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
