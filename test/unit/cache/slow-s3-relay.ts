/**
 * A fixture, not a real storage service: a TCP relay in front of the s3rver fixture (itself the stand-in
 * for S3, none being packaged in Debian) that plays a slow bucket, which s3rver cannot: every chunk a
 * client sends waits `delayMs` before it goes on (answers come back at once), and `freeze()` holds
 * every byte from then on, so the bucket takes nothing at all until `thaw()`. Bytes pass unchanged
 * (s3rver checks signatures over the Host header the client signed).
 */
import { createConnection, createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { onTestFinished } from 'vitest';
import type { BlobStoreConfig } from '../../../src/config/shared-stores.js';
import type { S3Fixture } from './s3rver-fixture.js';

export interface SlowS3Relay {
  endpoint: string;
  config(prefix?: string): Extract<BlobStoreConfig, { kind: 's3' }>;
  freeze(): void;
  thaw(): void;
}

export async function startSlowS3Relay(s3: S3Fixture, delayMs: number): Promise<SlowS3Relay> {
  const target = new URL(s3.endpoint);
  const sockets = new Set<Socket>();
  let frozen = false;
  let held: Array<() => void> = [];
  const server = createServer((client) => {
    const upstream = createConnection({ host: target.hostname, port: Number(target.port) });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    upstream.pipe(client);
    client.on('data', (chunk: Buffer) => {
      client.pause();
      const forward = (): void => {
        if (frozen) return void held.push(forward);
        upstream.write(chunk);
        client.resume();
      };
      setTimeout(forward, delayMs);
    });
    client.on('end', () => upstream.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    endpoint,
    config: (prefix = 'cache') => ({ ...s3.config(prefix), endpoint }),
    freeze: () => {
      frozen = true;
    },
    thaw: () => {
      frozen = false;
      const waiting = held;
      held = [];
      for (const forward of waiting) forward();
    },
  };
}
