/**
 * Which Host names the operations routes answer under (DNS rebinding): Layover's own (addresses,
 * single-label and private names, docker.proxy, the machine's hostname, ADMIN_HOSTNAMES); a name under
 * a public domain, which a page of another site could have pointed at Layover, only when configured.
 */
import { describe, expect, it } from 'vitest';
import { OwnHostnames } from '../../../src/admin/own-hostnames.js';

describe('OwnHostnames', () => {
  const own = new OwnHostnames(['layover.corp.example.com', '*.ops.example.net'], 'node-7.dc1.example.org');

  it('answers under an address, a private or single-label name, docker.proxy, the hostname and the names configured', () => {
    const hosts = [
      ['10.0.0.5', '10.0.0.5:8080', '[fd00::5]:80', '[::1]'],
      ['localhost:80', 'layover', 'layover:8080', 'layover.monitoring.svc', 'layover.monitoring.svc.cluster.local:80', 'nas.local', 'ops.internal', 'box.home.arpa', 'registry.test'],
      ['DOCKER.PROXY', 'node-7.dc1.example.org', 'node-7', 'layover.corp.example.com:80', 'a.ops.example.net.'],
    ].flat();
    for (const host of hosts) expect(own.allows(host), host).toBe(true);
    // HTTP/1.0 without Host: no browser sends one.
    expect(own.allows(undefined)).toBe(true);
  });

  it('refuses any other name under a public domain, and what is no name at all', () => {
    for (const host of ['attacker.example.com', 'attacker.example.com:80', 'ops.example.net', 'layover.corp.example.com.evil.com', 'node-7.dc1.example.org.evil.com', 'svc.evil.com', 'bad_name.com', '-x.internal']) {
      expect(own.allows(host), host).toBe(false);
    }
  });

  it('answers every name with `*`, and takes a hostname that is no valid name without failing', () => {
    expect(new OwnHostnames(['*']).allows('attacker.example.com')).toBe(true);
    expect(new OwnHostnames([], 'my_host').allows('10.1.1.1')).toBe(true);
  });
});
