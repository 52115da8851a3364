/**
 * A CONNECT client written out by hand, for what curl will not do: pipeline bytes behind the CONNECT
 * head, send malformed authorities, send SNI for another name than the one CONNECTed to.
 */
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

export interface ConnectAnswer {
  status: number;
  /** The status line and headers. */
  head: string;
  /** The body of a refusal (read to the end); '' for a 200. */
  body: string;
  socket: Socket;
  /** Bytes that came after the head of a 200 (none, for a well-behaved proxy). */
  rest: Buffer;
}

/** Sends `request` (a whole CONNECT head, or any bytes) to the proxy and reads its answer. */
export async function sendRaw(port: number, request: string | Buffer, host = '127.0.0.1', localAddress?: string): Promise<ConnectAnswer> {
  const socket = netConnect({ port, host, ...(localAddress ? { localAddress } : {}) });
  await once(socket, 'connect');
  socket.write(request);
  let buffered: Buffer = Buffer.alloc(0);
  for (;;) {
    const end = buffered.indexOf('\r\n\r\n');
    if (end !== -1) {
      const head = buffered.subarray(0, end).toString('latin1');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
      const rest = buffered.subarray(end + 4);
      if (status === 200) return { status, head, body: '', socket, rest };
      const chunks = [rest];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      await Promise.race([once(socket, 'end'), once(socket, 'close')]);
      socket.destroy();
      return { status, head, body: Buffer.concat(chunks).toString('utf8'), socket, rest: Buffer.alloc(0) };
    }
    const chunk = await new Promise<Buffer | null>((resolve) => {
      const onData = (data: Buffer): void => done(data);
      const onEnd = (): void => done(null);
      const done = (value: Buffer | null): void => {
        socket.off('data', onData).off('end', onEnd).off('close', onEnd);
        socket.pause();
        resolve(value);
      };
      socket.on('data', onData).once('end', onEnd).once('close', onEnd);
      socket.resume();
    });
    if (chunk === null) {
      socket.destroy();
      return { status: 0, head: buffered.toString('latin1'), body: '', socket, rest: Buffer.alloc(0) };
    }
    buffered = Buffer.concat([buffered, chunk]);
  }
}

/** `CONNECT authority HTTP/1.1` with a matching Host and the extra headers, from `localAddress` if given. */
export function sendConnect(port: number, authority: string, headers: Record<string, string> = {}, localAddress?: string): Promise<ConnectAnswer> {
  const lines = [`CONNECT ${authority} HTTP/1.1`, `Host: ${authority}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  return sendRaw(port, `${lines.join('\r\n')}\r\n\r\n`, '127.0.0.1', localAddress);
}

/** TLS over an established tunnel. */
export async function startTls(socket: Socket, servername: string, ca: string): Promise<TLSSocket> {
  const tls = tlsConnect({ socket, servername, ca, ALPNProtocols: ['http/1.1'] });
  await once(tls, 'secureConnect');
  return tls;
}

/** One HTTP/1.1 GET with `Connection: close` over `stream`, read to the end. */
export async function getOver(stream: Socket, path: string, host: string): Promise<{ status: number; headers: string; body: string }> {
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  stream.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  await Promise.race([once(stream, 'end'), once(stream, 'close')]);
  const text = Buffer.concat(chunks).toString('utf8');
  const end = text.indexOf('\r\n\r\n');
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), headers: text.slice(0, end), body: text.slice(end + 4) };
}
