/**
 * Where a cold download's first byte waits, read off the wire: tcpdump on the sandbox's loopback
 * captures the first packets that carry data on port 443 while one download runs, and
 * `firstByteShares` splits the client's wait for its first byte into the upstream's part (from the
 * proxy's request to the upstream's first answer) and the proxy's own (the rest: taking the request,
 * asking the upstream, passing the answer on). curl's time to the first byte against a direct
 * download measures the upstream's time twice, on two connections, and this registry's answer alone
 * moves by milliseconds between requests (bench/README.md, tenth session); the wire shows the
 * proxy's part of one wait.
 *
 * Only TLS record headers are read (the first payload byte: 0x17 application data, 0x16 a handshake,
 * 0x14 TLS 1.3's compatibility change_cipher_spec that precedes a client's Finished), nothing is
 * decrypted. The client's request is the last packet it sent before the proxy turned to the
 * upstream. The upstream's answer is its first application-data packet of 100 bytes or more after the
 * proxy's first packet to it that is not a ClientHello (an HTTP/2 peer's small control frames, and a
 * HEADERS frame before its DATA, are passed over: for that peer the split is approximate); the
 * proxy's request is its last packet to the upstream before that answer, so a new upstream
 * connection's handshake counts as the proxy's own time. An upstream that sent TLS 1.3 session
 * tickets in packets of their own after the handshake would have them taken for its answer: the
 * distribution registry sends them with its handshake.
 */
import type { ChildProcess } from 'node:child_process';
import type { Sandbox } from '../../test/bench/sandbox.js';

/** One TCP segment that carries data. */
export interface Packet {
  /** Seconds, the kernel's capture time. */
  time: number;
  from: string;
  to: string;
  /** TCP payload bytes. */
  length: number;
  /** The first payload byte (a TLS record's content type when the segment starts a record); -1 if not captured. */
  firstByte: number;
}

/** A client's wait for its first byte, split (milliseconds). */
export interface FirstByteShares {
  /** From the client's request to the first byte the proxy sent back. */
  clientWaitMs: number;
  /** From the proxy's request to the upstream's first answer. */
  upstreamMs: number;
  /** The client's wait minus the upstream's part. */
  proxyMs: number;
  /** Of the proxy's share: from the client's request to the proxy's request upstream. */
  beforeUpstreamMs: number;
  /** Of the proxy's share: from the upstream's answer to the client's first byte. */
  afterUpstreamMs: number;
}

const APPLICATION_DATA = 0x17;
const HANDSHAKE = 0x16;
/** The upstream's answer starts with a record at least this long: headers, or a DATA frame. */
const ANSWER_BYTES = 100;
/** Only segments with a payload, on port 443 (the clients', the proxies' and the upstream's). */
const FILTER = 'tcp port 443 and (((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)';
/** How long tcpdump is given to print what it has captured before it is stopped. */
const PRINT_GRACE_MS = 200;
const HEADER_LINE = /^(\d+\.\d+) IP (\d+\.\d+\.\d+\.\d+\.\d+) > (\d+\.\d+\.\d+\.\d+\.\d+): tcp (\d+)$/;
const HEX_LINE = /^\s+0x[0-9a-f]+:\s+([0-9a-f ]+)$/;

/** tcpdump's `-tt -n -q -x` lines as packets. Lines it does not know (its own notes) are skipped. */
export function parseTcpdump(text: string): Packet[] {
  const packets: Array<Packet & { hex: string }> = [];
  for (const line of text.split('\n')) {
    const header = HEADER_LINE.exec(line);
    if (header) {
      packets.push({ time: Number(header[1]), from: header[2]!, to: header[3]!, length: Number(header[4]), firstByte: -1, hex: '' });
      continue;
    }
    const hex = HEX_LINE.exec(line);
    const last = packets.at(-1);
    if (hex && last) last.hex += hex[1]!.replaceAll(' ', '');
  }
  return packets.map(({ hex, ...packet }) => ({ ...packet, firstByte: payloadStart(hex) }));
}

/** The first TCP payload byte of an IPv4 packet given as hex, or -1 when the capture stopped before it. */
function payloadStart(hex: string): number {
  const byte = (offset: number): number => (offset * 2 + 2 <= hex.length ? parseInt(hex.slice(offset * 2, offset * 2 + 2), 16) : -1);
  const ipHeader = (byte(0) & 0x0f) * 4;
  const dataOffset = byte(ipHeader + 12);
  if (byte(0) < 0 || dataOffset < 0) return -1;
  return byte(ipHeader + (dataOffset >> 4) * 4);
}

/**
 * The shares of one download through the proxy at `proxy` (its address; it listens on 443) from the
 * upstream at `upstream` (address, port 443). Undefined when the capture does not hold all four moments.
 */
export function firstByteShares(packets: readonly Packet[], proxy: string, upstream: string): FirstByteShares | undefined {
  const proxyPort = `${proxy}.443`;
  const upstreamPort = `${upstream}.443`;
  const fromClient = (p: Packet): boolean => p.to === proxyPort;
  const toClient = (p: Packet): boolean => p.from === proxyPort;
  const toUpstream = (p: Packet): boolean => p.to === upstreamPort;
  const fromUpstream = (p: Packet): boolean => p.from === upstreamPort;
  const firstUpstreamPacket = packets.findIndex(toUpstream);
  if (firstUpstreamPacket < 0) return undefined;
  // The client's request: the last thing it sent before the proxy turned to the upstream.
  const request = packets.slice(0, firstUpstreamPacket).findLast(fromClient);
  const after = (start: Packet | undefined, test: (p: Packet) => boolean): Packet | undefined =>
    start && packets.slice(packets.indexOf(start) + 1).find(test);
  // The upstream's answer follows the proxy's first packet to it that is not a ClientHello (the
  // request, or its Finished with the request in the same segment).
  const asked = after(request, (p) => toUpstream(p) && p.firstByte !== HANDSHAKE);
  const upstreamAnswer = after(asked, (p) => fromUpstream(p) && p.firstByte === APPLICATION_DATA && p.length >= ANSWER_BYTES);
  const upstreamRequest = upstreamAnswer && packets.slice(0, packets.indexOf(upstreamAnswer)).findLast(toUpstream);
  const clientFirstByte = after(upstreamAnswer, (p) => toClient(p) && p.firstByte === APPLICATION_DATA);
  if (!request || !upstreamRequest || !upstreamAnswer || !clientFirstByte) return undefined;
  const clientWaitMs = (clientFirstByte.time - request.time) * 1000;
  const upstreamMs = (upstreamAnswer.time - upstreamRequest.time) * 1000;
  return {
    clientWaitMs,
    upstreamMs,
    proxyMs: clientWaitMs - upstreamMs,
    beforeUpstreamMs: (upstreamRequest.time - request.time) * 1000,
    afterUpstreamMs: (clientFirstByte.time - upstreamAnswer.time) * 1000,
  };
}

export interface WireCapture {
  /** Ends the capture (if the packet count has not) and gives what it holds. */
  stop(): Promise<Packet[]>;
}

/**
 * Starts tcpdump on the sandbox's loopback; resolves once it listens. It stops by itself after
 * `packets` segments with data, so that it costs nothing for the rest of a long download: a miss
 * through Layover reaches its client's first byte within about 50, the registry proxy's HTTP/2
 * frames within about 130.
 */
export async function startWireCapture(sandbox: Sandbox, packets = 400): Promise<WireCapture> {
  // --immediate-mode: each packet as it comes, not in blocks a second apart that a stop would lose.
  const child = sandbox.spawn('tcpdump', ['-i', 'lo', '--immediate-mode', '-n', '-tt', '-q', '-l', '-x', '-s', '128', '-c', `${packets}`, FILTER]);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stderr?.on('data', () => stderr.includes('listening on') && resolve());
    child.once('exit', () => reject(new Error(`tcpdump ended before it listened: ${stderr.trim()}`)));
  });
  return {
    async stop() {
      // What the download sent has passed the tap already; tcpdump may still be printing it.
      await new Promise((resolve) => setTimeout(resolve, PRINT_GRACE_MS));
      stopChild(child);
      await exited;
      return parseTcpdump(stdout);
    },
  };
}

function stopChild(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
}
