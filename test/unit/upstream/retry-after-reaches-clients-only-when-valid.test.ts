/**
 * An upstream's 429 on a tag becomes Layover's own TOOMANYREQUESTS; its Retry-After is an
 * upstream's word and reaches the client only as delta-seconds or an HTTP date, never as whatever
 * text the upstream chose.
 */
import { expect, it } from 'vitest';
import { tooManyRequests } from '../../../src/proxy/manifest-budget.js';

const target = { registry: 'registry-1.docker.io', origin: 'https://registry-1.docker.io' };

it.each([
  ['delta-seconds', '120', '120'],
  ['an HTTP date', 'Wed, 21 Oct 2026 07:28:00 GMT', 'Wed, 21 Oct 2026 07:28:00 GMT'],
  ['padded', ' 60 ', '60'],
  ['text', 'soon', undefined],
  ['markup', '<script>alert(1)</script>', undefined],
  ['a negative number', '-5', undefined],
  ['ten digits', '9999999999', undefined],
  ['a list', ['60', '120'], undefined],
  ['nothing', undefined, undefined],
])('%s: %j', (_case, value, expected) => {
  const error = tooManyRequests(target, value === undefined ? {} : { 'retry-after': value });
  expect([error.code, error.status]).toEqual(['TOOMANYREQUESTS', 429]);
  expect(error.headers['retry-after']).toBe(expected);
  expect(error.message).toContain('registry-1.docker.io');
});
