/** A worker's batch of handed-over packets reaches the main thread byte for byte, with each client's address and port. */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HandoverBatch, readHandovers } from '../../../src/dns/handover-batch.js';

function collect(): { batches: Uint8Array[]; send: (frames: Uint8Array) => void } {
  const batches: Uint8Array[] = [];
  return { batches, send: (frames) => batches.push(frames) };
}

function unpack(batches: Uint8Array[]): { packet: Buffer; address: string; port: number }[] {
  const out: { packet: Buffer; address: string; port: number }[] = [];
  for (const frames of batches) readHandovers(frames, (packet, address, port) => out.push({ packet: Buffer.from(packet), address, port }));
  return out;
}

describe('HandoverBatch', () => {
  it('hands over every packet of a turn in one batch, in order, with its client', async () => {
    const { batches, send } = collect();
    const batch = new HandoverBatch(send);
    const sent = [
      { packet: randomBytes(12), address: '127.0.0.1', port: 53 },
      { packet: Buffer.alloc(0), address: 'fe80::1%eth0', port: 65535 },
      { packet: randomBytes(4096), address: '::ffff:192.0.2.1', port: 1 },
    ];
    for (const { packet, address, port } of sent) batch.add(packet, address, port);
    expect(batches).toHaveLength(0);
    await new Promise((resolve) => setImmediate(resolve));
    expect(batches).toHaveLength(1);
    expect(unpack(batches)).toEqual(sent);
  });

  it('starts a new batch when the next packet would not fit, so the largest datagram passes whole', async () => {
    const { batches, send } = collect();
    const batch = new HandoverBatch(send);
    const largest = randomBytes(65_507);
    batch.add(largest, '127.0.0.2', 4000);
    batch.add(largest, '127.0.0.3', 4001);
    await new Promise((resolve) => setImmediate(resolve));
    expect(batches).toHaveLength(2);
    expect(unpack(batches)).toEqual([
      { packet: largest, address: '127.0.0.2', port: 4000 },
      { packet: largest, address: '127.0.0.3', port: 4001 },
    ]);
  });
});
