/**
 * Issue 12 (the status page invites browsers, which preconnect): a connection that never sent a
 * request held the stop. server.close() ends idle keep-alive connections, not one that carried
 * nothing yet, so a stop waited for CLIENT_HEADER_TIMEOUT and ran past SHUTDOWN_GRACE.
 */
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { expect, it } from 'vitest';
import { startLayover } from '../../helpers/start-layover.js';

it('closes with a plain and a TLS connection open that never sent a request, ending both', async () => {
  // Far beyond the bound below: without the fix only this deadline would end the silent connections.
  const layover = await startLayover({ 'client-header-timeout': '10m' });
  const plain = netConnect({ host: '127.0.0.1', port: layover.addresses.http!.port });
  await once(plain, 'connect');
  const tls = tlsConnect({ host: '127.0.0.1', port: layover.addresses.https.port, servername: 'docker.proxy', ca: layover.app.ca.certPem });
  await once(tls, 'secureConnect');
  const ended = Promise.all([once(plain, 'close'), once(tls, 'close')]);

  const outcome = await Promise.race([
    layover.close().then(() => 'closed'),
    new Promise((resolve) => setTimeout(() => resolve('still waiting'), 20_000)),
  ]);
  expect(outcome).toBe('closed');
  await ended;
}, 40_000);
