/**
 * Which Host names a browser's request to the operations routes is answered under (DNS rebinding):
 * Layover's own (addresses, localhost, docker.proxy, the machine's hostname, ADMIN_HOSTNAMES), any
 * name for a request no browser sent.
 */
import { describe, expect, it } from 'vitest';
import { OwnHostnames } from '../../../src/admin/own-hostnames.js';

const CHROME = { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0', 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'cors' };
const browser = (host: string, headers: Record<string, string> = CHROME) => ({ headers: { host, ...headers } });

describe('OwnHostnames', () => {
  const own = new OwnHostnames(['layover.corp.example', '*.ops.example'], 'node-7.cluster.local');

  it('answers a browser under an address, localhost, docker.proxy, the hostname and the names configured', () => {
    for (const host of ['10.0.0.5', '10.0.0.5:8080', '[fd00::5]:80', '[::1]', 'localhost:80', 'DOCKER.PROXY', 'node-7.cluster.local', 'node-7', 'layover.corp.example:80', 'a.ops.example.']) {
      expect(own.allows(browser(host)), host).toBe(true);
    }
  });

  it('refuses a browser under any other name, whatever it says of itself', () => {
    for (const host of ['rebound.example', 'rebound.example:80', 'ops.example', 'layover.corp.example.evil', '', 'node-7.cluster.local.evil']) {
      expect(own.allows(browser(host)), host).toBe(false);
    }
    // A script may set User-Agent (Firefox lets it) but not remove Sec-Fetch-*; an older browser sends only Mozilla.
    expect(own.allows(browser('rebound.example', { 'user-agent': 'Prometheus/3.0', 'sec-fetch-site': 'same-origin' }))).toBe(false);
    expect(own.allows(browser('rebound.example', { 'user-agent': 'Mozilla/5.0 (Macintosh) Safari/605.1.15' }))).toBe(false);
  });

  it('answers a request no browser sent under any name (scrapers, the CLI, curl, Node\'s fetch)', () => {
    expect(own.allows({ headers: { host: 'layover.monitoring.svc', 'user-agent': 'node', 'sec-fetch-mode': 'cors' } })).toBe(true);
    expect(own.allows({ headers: { host: 'rebound.example', 'user-agent': 'Prometheus/3.0.0' } })).toBe(true);
    expect(own.allows({ headers: { host: 'layover.monitoring.svc:80', 'user-agent': 'curl/8.5.0' } })).toBe(true);
  });

  it('answers every name with `*`, and takes a hostname that is no valid name without failing', () => {
    expect(new OwnHostnames(['*']).allows(browser('rebound.example'))).toBe(true);
    expect(new OwnHostnames([], 'my_host').allows(browser('10.1.1.1'))).toBe(true);
  });
});
