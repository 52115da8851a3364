/**
 * The upstream resolver of a sandbox: the real Debian dnsmasq on 127.0.0.3:53 inside the namespace,
 * answering only the names it is given (`--host-record`), with no resolv.conf, no hosts file and no
 * upstream of its own (`--no-resolv`): every other name is REFUSED, nothing is forwarded.
 * Layover gets `--upstream-dns 127.0.0.3`. test/helpers/dnsmasq.ts runs dnsmasq on the host's
 * loopback with a free port; this one runs inside a sandbox on a fixed address instead.
 */
import { hermeticDnsmasqArgs } from '../helpers/dnsmasq.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Sandbox, stopChild } from './sandbox.js';

export const RESOLVER_ADDRESS = '127.0.0.3';

export interface Resolver {
  readonly address: string;
  /** A resolv.conf naming only this resolver: pass as `resolvConf` to bypass Layover's DNS. */
  readonly resolvConf: string;
  log(): string;
  stop(): Promise<void>;
}

export async function startResolver(sandbox: Sandbox, records: Record<string, string[]>, address = RESOLVER_ADDRESS): Promise<Resolver> {
  const args = [
    ...hermeticDnsmasqArgs(),
    `--listen-address=${address}`,
    '--port=53',
    ...Object.entries(records).map(([name, addresses]) => `--host-record=${[name, ...addresses].join(',')}`),
  ];
  const child = sandbox.spawn('dnsmasq', args);
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const resolvConf = join(sandbox.dir, 'resolv.upstream.conf');
  writeFileSync(resolvConf, `nameserver ${address}\noptions timeout:2 attempts:1\n`);
  const resolver: Resolver = { address, resolvConf, log: () => output, stop: () => stopChild(child) };
  sandbox.onDestroy(() => resolver.stop());

  // dnsmasq answers version.bind itself: the first answer means it is up.
  for (let attempt = 0; attempt < 50; attempt++) {
    if (child.exitCode !== null) break;
    const probe = await sandbox.exec('dig', [`@${address}`, '+tries=1', '+time=1', 'version.bind', 'CH', 'TXT']);
    if (probe.code === 0) return resolver;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await resolver.stop();
  throw new Error(`dnsmasq did not start in ${sandbox.name}:\n${output}`);
}
