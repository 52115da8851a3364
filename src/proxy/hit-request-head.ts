import type { IncomingHttpHeaders } from 'node:http';

/** A request head read off a connection's bytes by readHitRequestHead: only the plainest GET or HEAD. */
export interface HitRequestHead {
  readonly method: 'GET' | 'HEAD';
  readonly url: string;
  readonly httpVersionMajor: 1;
  /** The headers the hit path reads (host, accept, authorization, connection), lower-case, each at most once. */
  readonly headers: IncomingHttpHeaders;
  /** Every header as sent, name and value in turn (IncomingMessage.rawHeaders). */
  readonly rawHeaders: string[];
  /** The client asked for the connection to end after this answer (`Connection: close`). */
  readonly close: boolean;
  /** Where the next request starts in the bytes read. */
  readonly end: number;
}

/** Larger heads are Node's to read, with its own limits (maxHeaderSize). */
export const MAX_HIT_HEAD_BYTES = 8 * 1024;
const MAX_HEADERS = 64;

const REQUEST_LINE = /^(GET|HEAD) (\/v2\/[!-~]*) HTTP\/1\.1$/;
// A token, a colon, and a value of visible ASCII, spaces and tabs (obs-text, control bytes, a lone
// CR or LF within a line: not here). The value is trimmed after: a lazy match up to trailing blanks
// would try them again at every character, quadratic in a hostile value of blanks.
const HEADER_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):([\t -~]*)$/;
/** Read by the hit path: sent twice, Node's IncomingMessage would keep one or join them, so such a request is Node's. */
const READ_ONCE = new Set(['host', 'accept', 'authorization', 'connection']);
/** Give the request a body or change what the connection is: Node's to handle. */
const NOT_HERE = new Set(['content-length', 'transfer-encoding', 'expect', 'upgrade', 'range', 'http2-settings']);

/**
 * The head of the request starting at `from` in `bytes`, when it is complete and as plain as a
 * registry client's GET or HEAD of `/v2/…` over HTTP/1.1: the request line, a Host, headers of visible
 * ASCII, no body, no upgrade, no range, at most 8 KiB. Anything else (a head cut in two, another method or
 * version, an odd byte, a header sent twice that the hit path reads) is undefined: the connection
 * then goes to Node's HTTP parser with the bytes as they came, which answers or refuses as before.
 */
export function readHitRequestHead(bytes: Buffer, from: number): HitRequestHead | undefined {
  const headEnd = bytes.indexOf('\r\n\r\n', from, 'latin1');
  if (headEnd === -1 || headEnd - from > MAX_HIT_HEAD_BYTES) return undefined;
  const lines = bytes.toString('latin1', from, headEnd).split('\r\n');
  const requestLine = REQUEST_LINE.exec(lines[0]!);
  if (!requestLine || lines.length - 1 > MAX_HEADERS) return undefined;
  const headers: IncomingHttpHeaders = {};
  const rawHeaders: string[] = [];
  let close = false;
  for (let i = 1; i < lines.length; i++) {
    const header = HEADER_LINE.exec(lines[i]!);
    if (!header) return undefined;
    const name = header[1]!;
    const value = header[2]!.trim();
    const key = name.toLowerCase();
    if (NOT_HERE.has(key)) return undefined;
    rawHeaders.push(name, value);
    if (!READ_ONCE.has(key)) continue;
    if (headers[key] !== undefined) return undefined;
    if (key === 'connection') {
      const options = value.toLowerCase().split(',').map((option) => option.trim());
      if (options.some((option) => option !== 'keep-alive' && option !== 'close' && option !== '')) return undefined;
      close = options.includes('close');
    }
    headers[key] = value;
  }
  // HTTP/1.1 requires it: Node's server refuses a request without one (400), and so it is Node's.
  if (headers.host === undefined) return undefined;
  return { method: requestLine[1] as 'GET' | 'HEAD', url: requestLine[2]!, httpVersionMajor: 1, headers, rawHeaders, close, end: headEnd + 4 };
}
