/**
 * ANY was the amplifier of choice: a 30-octet question fetching every record a
 * name has. Layover answers it as RFC 8482 allows, never by forwarding: a name
 * it does not intercept gets one synthesised HINFO "RFC8482" record, an
 * intercepted one only its A and AAAA records.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { dig } from '../../helpers/dig.js';
import { startDnsmasq } from '../../helpers/dnsmasq.js';
import { startDnsServer } from './start-dns-server.js';

describe('ANY (RFC 8482)', () => {
  it('answers ANY with one HINFO record instead of forwarding it, over UDP and TCP', async () => {
    const long = 'x'.repeat(200);
    const upstream = await startDnsmasq({
      hostRecords: { 'big.test': ['192.0.2.7', '2001:db8::7'] },
      args: [`--txt-record=big.test,${long},${long}`, '--mx-host=big.test,mail.test'],
    });
    onTestFinished(() => upstream.stop());
    // The upstream really has plenty to give for ANY.
    expect((await dig(upstream.port, 'big.test', 'ANY', { tcp: true, extra: ['@' + upstream.host] })).answers.length).toBeGreaterThan(1);
    const { port, lines } = await startDnsServer({ advertise: ['127.0.0.10', 'fd00::10'], upstreams: [{ host: upstream.host, port: upstream.port }] });
    for (const tcp of [false, true]) {
      const any = await dig(port, 'big.test', 'ANY', { tcp });
      expect(any.status).toBe('NOERROR');
      expect(any.flags).not.toContain('tc');
      expect(any.answers).toEqual([{ name: 'big.test.', ttl: 3600, type: 'HINFO', data: '"RFC8482" ""' }]);
    }
    expect(lines.filter((line) => line.msg === 'dns forwarding')).toEqual([]);
    // Other types are still forwarded.
    expect((await dig(port, 'big.test', 'A')).answers[0]?.data).toBe('192.0.2.7');

    const intercepted = await dig(port, 'docker.proxy', 'ANY');
    expect(intercepted.answers.map((answer) => [answer.type, answer.data])).toEqual([
      ['A', '127.0.0.10'],
      ['AAAA', 'fd00::10'],
    ]);
  });
});
