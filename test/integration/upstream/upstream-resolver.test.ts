import { onTestFinished, describe, expect, it } from 'vitest';
import type { LookupAddress } from 'node:dns';
import { startDnsmasq } from '../../helpers/dnsmasq.js';
import { UpstreamResolver } from '../../../src/upstream/upstream-resolver.js';

async function upstream() {
  const dnsmasq = await startDnsmasq({
    hostRecords: {
      'registry.test': ['127.0.0.2', '::2'],
      'v6only.test': ['::1'],
      'v4only.test': ['127.0.0.5'],
    },
    nxdomains: ['missing.test'],
    ttl: 60,
  });
  onTestFinished(() => dnsmasq.stop());
  return dnsmasq;
}

function lookup(resolver: UpstreamResolver, name: string, options: object): Promise<{ address: string | LookupAddress[]; family?: number }> {
  return new Promise((resolve, reject) =>
    resolver.lookup(name, options as never, (err, address, family) => (err ? reject(err) : resolve({ address, family }))),
  );
}

describe('UpstreamResolver', () => {
  it('resolves through the configured resolver only, IPv4 first', async () => {
    const dnsmasq = await upstream();
    const resolver = new UpstreamResolver({ servers: [{ host: dnsmasq.host, port: dnsmasq.port }] });
    expect(await resolver.resolve('registry.test')).toEqual([
      { address: '127.0.0.2', family: 4 },
      { address: '::2', family: 6 },
    ]);
    // A name the system resolver knows but our upstream does not is not found: no fallback to the host.
    await expect(resolver.resolve('localhost')).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });

  it('falls back to the other family when a name has only one', async () => {
    const dnsmasq = await upstream();
    const resolver = new UpstreamResolver({ servers: [{ host: dnsmasq.host, port: dnsmasq.port }] });
    expect(await resolver.resolve('v6only.test')).toEqual([{ address: '::1', family: 6 }]);
    expect(await resolver.resolve('v4only.test')).toEqual([{ address: '127.0.0.5', family: 4 }]);
  });

  it('serves net.connect-style lookups, honouring `all` and `family`', async () => {
    const dnsmasq = await upstream();
    const resolver = new UpstreamResolver({ servers: [{ host: dnsmasq.host, port: dnsmasq.port }] });
    expect(await lookup(resolver, 'registry.test', {})).toEqual({ address: '127.0.0.2', family: 4 });
    expect(await lookup(resolver, 'registry.test', { family: 6 })).toEqual({ address: '::2', family: 6 });
    expect((await lookup(resolver, 'registry.test', { all: true })).address).toHaveLength(2);
    expect(await lookup(resolver, '127.0.0.9', {})).toEqual({ address: '127.0.0.9', family: 4 });
    await expect(lookup(resolver, 'v4only.test', { family: 6 })).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });

  it('caches answers for their TTL: a resolver that went away still resolves cached names', async () => {
    const dnsmasq = await upstream();
    const resolver = new UpstreamResolver({ servers: [{ host: dnsmasq.host, port: dnsmasq.port }], timeoutMs: 200, tries: 1 });
    await resolver.resolve('registry.test');
    await dnsmasq.stop();
    expect(await resolver.resolve('REGISTRY.test.')).toHaveLength(2);
    await expect(resolver.resolve('v4only.test')).rejects.toMatchObject({ code: expect.stringMatching(/EAI_AGAIN|ENOTFOUND/) });
  });

  it('reports NXDOMAIN as ENOTFOUND', async () => {
    const dnsmasq = await upstream();
    const resolver = new UpstreamResolver({ servers: [{ host: dnsmasq.host, port: dnsmasq.port }] });
    await expect(resolver.resolve('a.missing.test')).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });
});
