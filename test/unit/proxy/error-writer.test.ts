import { describe, expect, it } from 'vitest';
import { ociErrorResponse, rawOciError } from '../../../src/proxy/error-handler.js';
import { OciError } from '../../../src/registry/oci-errors.js';

describe('the one error format', () => {
  it('carries the status, the OCI body and the error\'s own headers', () => {
    const error = new OciError('TOOMANYREQUESTS', 'slow down', { limit: 1 }, { headers: { 'retry-after': '7' } });
    const { status, headers, body } = ociErrorResponse(error);
    expect(status).toBe(429);
    expect(headers).toMatchObject({ 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0', 'retry-after': '7', 'content-length': String(body.length) });
    expect(JSON.parse(body)).toEqual({ errors: [{ code: 'TOOMANYREQUESTS', message: 'slow down', detail: { limit: 1 } }] });
  });

  it('writes raw bytes with one header line per challenge and closes the connection', () => {
    const error = new OciError('UNAUTHORIZED', 'who are you', undefined, { headers: { 'www-authenticate': ['Basic realm="a"', 'Bearer realm="https://b/token"'] } });
    const text = rawOciError(error);
    const [head, body] = text.split('\r\n\r\n');
    const lines = head!.split('\r\n');
    expect(lines[0]).toBe('HTTP/1.1 401 Unauthorized');
    expect(lines).toContain('www-authenticate: Basic realm="a"');
    expect(lines).toContain('www-authenticate: Bearer realm="https://b/token"');
    expect(lines).toContain('connection: close');
    expect(lines).toContain(`content-length: ${Buffer.byteLength(body!)}`);
    expect(JSON.parse(body!)).toEqual({ errors: [{ code: 'UNAUTHORIZED', message: 'who are you' }] });
  });
});
