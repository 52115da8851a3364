import { createServer, get } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import { onTestFinished } from 'vitest';

export interface Served<S extends Readable = Readable> {
  body: Promise<Buffer>;
  /** The stream's error, if it failed (the response is then cut off). */
  failure: Promise<Error | null>;
  stream: S;
  /** The sizes of the response's writes, in order. */
  writes: number[];
  /** The most writes made and not yet called back (taken by the socket) at once. */
  mostInFlight: () => number;
}

/**
 * `stream` piped into a real HTTP response on loopback, read by a client that takes its time: the
 * socket then holds written chunks in its queue until the kernel takes them, so a buffer reused
 * before its write's callback would reach the client changed.
 */
export async function serve<S extends Readable>(stream: S): Promise<Served<S>> {
  const writes: number[] = [];
  let inFlight = 0;
  let mostInFlight = 0;
  let failed: (error: Error | null) => void = () => undefined;
  const failure = new Promise<Error | null>((resolve) => (failed = resolve));
  const server = createServer((_request, response) => {
    stream.once('error', (error) => {
      failed(error);
      response.destroy();
    });
    stream.once('close', () => {
      // Destroyed by its owner before its end (fastify does so when the client goes): the response goes
      // with it. A stream that ended closes once its last chunk is written, maybe before the client has it.
      if (!stream.readableEnded && !response.writableFinished) response.destroy();
      setImmediate(() => failed(null));
    });
    // Counts the writes the stream makes (observed, passed on unchanged).
    const write = response.write.bind(response) as (...args: unknown[]) => boolean;
    response.write = ((chunk: Buffer, ...rest: unknown[]) => {
      writes.push(chunk.length);
      const at = rest.findIndex((arg) => typeof arg === 'function');
      if (at >= 0) {
        const callback = rest[at] as (...args: unknown[]) => void;
        mostInFlight = Math.max(mostInFlight, ++inFlight);
        rest[at] = (...args: unknown[]) => {
          inFlight -= 1;
          callback(...args);
        };
      }
      return write(chunk, ...rest);
    }) as typeof response.write;
    stream.pipe(response);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as AddressInfo;
  const body = new Promise<Buffer>((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/' }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        response.pause();
        setTimeout(() => response.resume(), 1);
      });
      response.once('end', () => resolve(Buffer.concat(chunks)));
      response.once('error', reject);
      response.once('aborted', () => reject(new Error('aborted')));
    }).once('error', reject);
  });
  // Awaited by the test, maybe only after the stream failed: not an unhandled rejection meanwhile.
  body.catch(() => undefined);
  return { body, failure, stream, writes, mostInFlight: () => mostInFlight };
}
