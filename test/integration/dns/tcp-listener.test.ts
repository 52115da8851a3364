import { once } from 'node:events';
import net from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { type TcpHandler, TcpListener, type TcpListenerOptions } from '../../../src/dns/tcp-listener.js';
import { captureLogger } from '../../helpers/capture-logger.js';

type Limits = Partial<Pick<TcpListenerOptions, 'queryTimeoutMs' | 'maxConnections' | 'maxPerClient' | 'maxInFlight'>>;

async function listener(handle: TcpHandler, limits: Limits = {}) {
  const { logger, lines } = captureLogger('info');
  const tcp = new TcpListener({
    handle,
    logger,
    maxMessageBytes: 512,
    queryTimeoutMs: limits.queryTimeoutMs ?? 5000,
    maxConnections: limits.maxConnections ?? 10,
    maxPerClient: limits.maxPerClient ?? 10,
    maxInFlight: limits.maxInFlight ?? 4,
  });
  onTestFinished(() => tcp.close());
  return { port: await tcp.listen('127.0.0.1', 0), lines };
}

async function connect(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  onTestFinished(() => void socket.destroy());
  await once(socket, 'connect');
  return socket;
}

const frame = (body: Buffer) => Buffer.concat([Buffer.from([body.length >> 8, body.length & 0xff]), body]);

/** Reads `count` frames, returning their bodies. */
async function frames(socket: net.Socket, count: number): Promise<Buffer[]> {
  const bodies: Buffer[] = [];
  let buffered = Buffer.alloc(0);
  for await (const chunk of socket) {
    buffered = Buffer.concat([buffered, chunk as Buffer]);
    while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
      bodies.push(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
      buffered = buffered.subarray(2 + buffered.readUInt16BE(0));
      if (bodies.length === count) return bodies;
    }
  }
  return bodies;
}

describe('TcpListener', () => {
  it('answers several queries on one connection, split and coalesced across writes, as each completes', async () => {
    const { port } = await listener(async (query) => {
      // The first query is the slowest: its answer may come last (RFC 7766 §7).
      if (query[0] === 1) await new Promise((resolve) => setTimeout(resolve, 50));
      return Buffer.from([query[0]!, 0xaa]);
    });
    const socket = await connect(port);
    const all = Buffer.concat([1, 2, 3].map((n) => frame(Buffer.alloc(12, n))));
    socket.write(all.subarray(0, 5));
    await new Promise((resolve) => setTimeout(resolve, 20));
    socket.write(all.subarray(5));
    expect((await frames(socket, 3)).map((body) => body[0])).toEqual([2, 3, 1]);
  });

  it('closes a connection that announces an oversized message', async () => {
    const { port } = await listener(() => Buffer.from('ok'));
    const socket = await connect(port);
    socket.write(Buffer.from([0x02, 0x01, 0, 0, 0]));
    await once(socket, 'close');
  });

  it('closes idle connections', async () => {
    const { port } = await listener(() => Buffer.from('ok'), { queryTimeoutMs: 200 });
    const socket = await connect(port);
    const started = performance.now();
    await once(socket, 'close');
    expect(performance.now() - started).toBeGreaterThan(150);
  });

  it('keeps a connection whose answer is still being worked on past the query deadline', async () => {
    const { port } = await listener(async () => {
      await new Promise((resolve) => setTimeout(resolve, 600));
      return Buffer.from('slow');
    }, { queryTimeoutMs: 200 });
    const socket = await connect(port);
    socket.write(frame(Buffer.alloc(12)));
    expect((await frames(socket, 1))[0]?.toString()).toBe('slow');
  });

  it('closes an address\'s oldest idle connection for its newest when the address is at its cap', async () => {
    const { port } = await listener(() => Buffer.from('ok'), { maxPerClient: 2 });
    const [oldest, older] = [await connect(port), await connect(port)];
    const newest = await connect(port);
    await once(oldest!, 'close');
    for (const socket of [older!, newest]) {
      socket.write(frame(Buffer.alloc(12)));
      expect((await frames(socket, 1))[0]?.toString()).toBe('ok');
    }
  });

  it('refuses a connection beyond its limit only when every open one has a query in flight', async () => {
    let release = (): void => {};
    const held = new Promise<Buffer>((resolve) => (release = () => resolve(Buffer.from('late'))));
    const { port } = await listener(() => held, { maxConnections: 2 });
    const open = [await connect(port), await connect(port)];
    for (const socket of open) socket.write(frame(Buffer.alloc(12)));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const third = await connect(port);
    await once(third, 'close');
    release();
    expect((await frames(open[0]!, 1))[0]?.toString()).toBe('late');
  });

  it('bounds the queries answered at once per connection, and survives a handler that throws', async () => {
    let running = 0;
    let peak = 0;
    const { port, lines } = await listener(
      async (query) => {
        if (query[0] === 0xee) throw new Error('boom');
        running++;
        peak = Math.max(peak, running);
        await new Promise((resolve) => setTimeout(resolve, 5));
        running--;
        return query.subarray(0, 1);
      },
      { maxInFlight: 4 },
    );
    const socket = await connect(port);
    socket.write(frame(Buffer.alloc(12, 0xee)));
    socket.write(Buffer.concat(Array.from({ length: 40 }, (_, n) => frame(Buffer.alloc(12, n)))));
    expect(await frames(socket, 40)).toHaveLength(40);
    expect(peak).toBe(4);
    expect(lines.filter((line) => line.msg === 'dns tcp handler failed')).toHaveLength(1);
  });

  it('closes a connection whose client does not read its answers, before they pile up in memory', async () => {
    // Each answer near the 64 KiB a TCP frame can hold, answered a little later, as a forward would be.
    const big = Buffer.alloc(60_000, 1);
    const { port } = await listener(
      async () => {
        await new Promise((resolve) => setImmediate(resolve));
        return big;
      },
      { maxInFlight: 32, queryTimeoutMs: 60_000 },
    );
    const socket = await connect(port);
    socket.pause(); // reads nothing, ever
    // Not once(): its 'error' (the reset) rejects it.
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.write(Buffer.concat(Array.from({ length: 3000 }, (_, n) => frame(Buffer.alloc(12, n & 0xff)))));
    const started = Date.now();
    // A paused socket reads nothing, so it learns of the server's close at its next write (a reset).
    const poke = setInterval(() => socket.write(frame(Buffer.alloc(12))), 200);
    onTestFinished(() => clearInterval(poke));
    // Without the bound, answers waited in memory until the query deadline (a minute here).
    await closed;
    expect(Date.now() - started).toBeLessThan(10_000);
  }, 30_000);
});
