import { describe, expect, it } from 'vitest';
import { ownsItsMemory } from '../../../src/memory/free-now.js';
import { HitAnswer } from '../../../src/proxy/hit-path.js';
import type { Digest } from '../../../src/registry/digest.js';

const digest = `sha256:${'ab'.repeat(32)}` as Digest;
const answer = (): HitAnswer =>
  new HitAnswer({ kind: 'manifest', headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': digest, etag: `"${digest}"`, 'content-length': 527 }, annotated: {} }, 'public', digest, true);

describe('HitAnswer.head', () => {
  it('is the status line and the headers as Node writes them, made once', () => {
    const hit = answer();
    expect(hit.head.toString('latin1')).toBe(
      `HTTP/1.1 200 OK\r\ncontent-type: application/vnd.oci.image.manifest.v1+json\r\ndocker-content-digest: ${digest}\r\netag: "${digest}"\r\ncontent-length: 527\r\n`,
    );
    expect(hit.head).toBe(hit.head);
  });

  it('holds memory of its own, not a slice of a shared pool that a kept answer would keep whole', () => {
    expect(ownsItsMemory(answer().head)).toBe(true);
  });
});
