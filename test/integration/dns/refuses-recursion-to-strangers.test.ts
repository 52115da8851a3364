/**
 * Layover's DNS server is no open resolver: a name it does not intercept is
 * forwarded only for clients in DNS_ALLOW_RECURSION; anyone else gets REFUSED
 * (over UDP and TCP, and also for answers already in the cache), while the
 * intercepted names are answered for everyone. Loopback addresses stand in for
 * the clients: 127.0.0.2 is allowed, 127.0.0.1 is a stranger.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { LEVEL } from '../../helpers/capture-logger.js';
import { dig } from '../../helpers/dig.js';
import { startDnsmasq } from '../../helpers/dnsmasq.js';
import { dnsPolicy } from '../../unit/dns/policies.js';
import { startDnsServer } from './start-dns-server.js';

const ALLOWED = ['-b', '127.0.0.2'];
const STRANGER = ['-b', '127.0.0.1'];

async function serverAllowing(allowRecursion: string[]) {
  const upstream = await startDnsmasq({ hostRecords: { 'internal.corp.test': ['10.1.2.3'] } });
  onTestFinished(() => upstream.stop());
  return startDnsServer({ upstreams: [{ host: upstream.host, port: upstream.port }], policy: dnsPolicy({ allowRecursion }) });
}

describe('recursion allow list', () => {
  it('refuses to forward for a client outside the list, over UDP and TCP, and still answers intercepted names', async () => {
    const { port } = await serverAllowing(['10.0.0.0/8']);
    for (const tcp of [false, true]) {
      const forwarded = await dig(port, 'internal.corp.test', 'A', { tcp, extra: STRANGER });
      expect(forwarded.status, `tcp: ${tcp}`).toBe('REFUSED');
      expect(forwarded.answers).toEqual([]);
      expect(forwarded.flags).not.toContain('ra');
      const intercepted = await dig(port, 'docker.proxy', 'A', { tcp, extra: STRANGER });
      expect(intercepted.status).toBe('NOERROR');
      expect(intercepted.answers).toEqual([{ name: 'docker.proxy.', ttl: 60, type: 'A', data: '127.0.0.10' }]);
    }
  });

  it('forwards for a client inside the list, and does not hand the cached answer to a stranger', async () => {
    const { port } = await serverAllowing(['127.0.0.2/32']);
    const allowed = await dig(port, 'internal.corp.test', 'A', { extra: ALLOWED });
    expect(allowed.status).toBe('NOERROR');
    expect(allowed.answers[0]?.data).toBe('10.1.2.3');
    // The answer is in the cache now; a stranger must not learn it from there either.
    const stranger = await dig(port, 'internal.corp.test', 'A', { extra: STRANGER });
    expect(stranger.status).toBe('REFUSED');
    expect(stranger.answers).toEqual([]);
  });

  it('matches an IPv4 client seen by a dual-stack socket against the IPv4 networks', async () => {
    const upstream = await startDnsmasq({ hostRecords: { 'internal.corp.test': ['10.1.2.3'] } });
    onTestFinished(() => upstream.stop());
    const { port } = await startDnsServer({
      listen: { host: '::', port: 0 },
      upstreams: [{ host: upstream.host, port: upstream.port }],
      policy: dnsPolicy({ allowRecursion: ['127.0.0.2/32'] }),
    });
    expect((await dig(port, 'internal.corp.test', 'A', { extra: ALLOWED })).answers[0]?.data).toBe('10.1.2.3');
    expect((await dig(port, 'internal.corp.test', 'A', { extra: STRANGER })).status).toBe('REFUSED');
  });

  it('logs refusals at debug level, with one notice at info however many arrive', async () => {
    const { port, lines } = await serverAllowing(['10.0.0.0/8']);
    for (let i = 0; i < 20; i++) expect((await dig(port, `n${i}.corp.test`, 'A', { extra: STRANGER })).status).toBe('REFUSED');
    expect(lines.filter((line) => line.msg === 'dns recursion refused')).toHaveLength(20);
    expect(lines.filter((line) => line.level >= LEVEL.info)).toEqual([
      expect.objectContaining({ msg: 'dns server listening' }),
      expect.objectContaining({ level: LEVEL.info, client: '127.0.0.1', msg: expect.stringContaining('DNS_ALLOW_RECURSION') }),
    ]);
  });
});
