/**
 * The wire form of index changes between replicas: anything that can publish on the channel may send
 * garbage, so a message that is not a well-formed change is ignored, and a long removal is split into
 * messages that fit a Postgres NOTIFY (under 8000 bytes).
 */
import { describe, expect, it } from 'vitest';
import { decodeChange, encodeChange, MAX_MESSAGE_BYTES } from '../../../src/cache/indexes/change-messages.js';
import { entry } from './cache-index-suite.js';

describe('index change messages', () => {
  it('round-trips every kind of change', () => {
    for (const change of [
      { type: 'committed', entry: entry(1) },
      { type: 'removed', digests: [entry(1).digest, entry(2).digest] },
      { type: 'record-set', key: 'tag:quay.io/org/app:latest' },
      { type: 'record-deleted', key: 'tag:quay.io/org/app:latest' },
      { type: 'replayed' },
    ] as const) {
      expect(encodeChange(change, 'r1').map(decodeChange)).toEqual([{ change, origin: 'r1' }]);
    }
  });

  it('splits a removal of many sha512 digests into messages that each fit a NOTIFY', () => {
    const digests = Array.from({ length: 1_000 }, (_, i) => `sha512:${i.toString(16).padStart(128, '0')}` as never);
    const messages = encodeChange({ type: 'removed', digests }, 'r1');
    expect(messages.length).toBeGreaterThan(1);
    for (const message of messages) expect(Buffer.byteLength(message)).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
    expect(messages.flatMap((m) => (decodeChange(m)!.change as unknown as { digests: string[] }).digests)).toEqual(digests);
  });

  it('ignores messages that are not well-formed changes', () => {
    const good = JSON.parse(encodeChange({ type: 'committed', entry: entry(1) }, 'r1')[0]!) as { change: { entry: Record<string, unknown> } };
    for (const message of [
      '',
      'not json',
      'null',
      '[]',
      '{"origin":1,"change":{"type":"record-set","key":"k"}}',
      '{"origin":"r","change":{"type":"record-set","key":5}}',
      '{"origin":"r","change":{"type":"drop-everything"}}',
      '{"origin":"r","change":{"type":"removed","digests":["../../etc/passwd"]}}',
      '{"origin":"r","change":{"type":"removed","digests":"sha256:00"}}',
      JSON.stringify({ origin: 'r', change: { type: 'committed', entry: { ...good.change.entry, size: -1 } } }),
      JSON.stringify({ origin: 'r', change: { type: 'committed', entry: { ...good.change.entry, digest: 'sha256:short' } } }),
      JSON.stringify({ origin: 'r', change: { type: 'record-set', key: 'k'.repeat(MAX_MESSAGE_BYTES) } }),
    ]) {
      expect(decodeChange(message), message.slice(0, 80)).toBeNull();
    }
  });
});
