import { describe, expect, it } from 'vitest';
import { prefetchRequest } from '../../../src/prefetch/prefetch-routes.js';
import { OciError } from '../../../src/registry/oci-errors.js';

describe('the POST /admin/prefetch body', () => {
  it('takes images, an optional platform and referrers', () => {
    expect(prefetchRequest({ images: ['alpine'] })).toEqual({ images: ['alpine'], platform: null, referrers: false });
    expect(prefetchRequest({ images: ['a', 'b'], platform: 'linux/arm64', referrers: true })).toEqual({ images: ['a', 'b'], platform: { os: 'linux', architecture: 'arm64' }, referrers: true });
  });

  it('keeps a bad reference: it fails its own image only, not the request', () => {
    expect(prefetchRequest({ images: ['Bad//Ref', 'alpine'] }).images).toEqual(['Bad//Ref', 'alpine']);
  });

  it.each([
    ['not an object', 'x', 'expected a JSON object'],
    ['null', null, 'expected a JSON object'],
    ['an array', [], 'expected a JSON object'],
    ['no images', {}, 'images: expected a list'],
    ['an empty list', { images: [] }, 'images: expected a list'],
    ['too many', { images: Array.from({ length: 201 }, () => 'alpine') }, 'images: expected a list'],
    ['a number', { images: [1] }, 'every entry must be a string'],
    ['a huge entry', { images: ['a'.repeat(513)] }, 'every entry must be a string'],
    ['referrers as text', { images: ['a'], referrers: 'yes' }, 'referrers: expected true or false'],
    ['a platform number', { images: ['a'], platform: 5 }, 'platform: expected OS/ARCH'],
    ['a bad platform', { images: ['a'], platform: 'amd64' }, 'platform: '],
  ])('refuses %s with a 400 naming the field', (_what, body, message) => {
    let error: unknown;
    try {
      prefetchRequest(body);
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(OciError);
    expect((error as OciError).status).toBe(400);
    expect((error as OciError).message).toContain(message);
  });
});
