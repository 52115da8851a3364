/**
 * Issue 12: a request answered with an OCI error says which in its log line (errorCode,
 * errorMessage), and the status page's recent errors get the same words, not only "HTTP 503".
 */
import { request as httpsRequest } from 'node:https';
import { afterEach, expect, it, vi } from 'vitest';
import type { CompletedRequest } from '../../../src/metrics/metrics.js';
import { startLayover, type RunningLayover } from '../../helpers/start-layover.js';

const running: RunningLayover[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.close()));
});

function get(port: number, ca: string, host: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, servername: host, path, ca, headers: { host } }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

it('an upstream that cannot be resolved: 503 UNAVAILABLE, named in the log line and in what the status page is told', async () => {
  // The upstream resolver is a closed loopback port: quay.io cannot be resolved.
  const layover = await startLayover();
  running.push(layover);
  const seen: CompletedRequest[] = [];
  layover.app.metrics.onRequest((request) => seen.push(request));
  const answer = await get(layover.addresses.https.port, layover.app.ca.certPem, 'quay.io', '/v2/some/app/manifests/latest');
  expect(answer.status).toBe(503);
  const code = JSON.parse(answer.body).errors[0].code as string;
  expect(code).toBe('UNAVAILABLE');
  // The line is written once the response has finished, which the client may see first.
  const line = await vi.waitFor(() => {
    const found = layover.logs.find((l) => l.msg === 'request' && l.status === 503);
    if (!found) throw new Error('no request line yet');
    return found;
  });
  expect(line).toMatchObject({ errorCode: 'UNAVAILABLE' });
  expect(typeof line!.errorMessage).toBe('string');
  const completed = seen.find((r) => r.status === 503);
  expect(completed?.error).toBe(`UNAVAILABLE: ${String(line!.errorMessage)}`);
});
