/**
 * The benchmark client: curl inside the sandbox, HTTP/1.1 over TLS with verification on, the body
 * thrown away (`-o /dev/null`), the timing taken from curl itself (`time_total`, so the cost of
 * starting curl through `ip netns exec` is not counted). Names are pinned with `--resolve`, so no DNS
 * lookup is part of a measurement. curl runs under bash's `time`, so each transfer also says how much
 * CPU the client itself used.
 */
import type { Sandbox } from '../../test/bench/sandbox.js';

export interface Endpoint {
  /** Host name of the URL and the TLS server name. */
  host: string;
  /** The address `host` is pinned to. */
  address: string;
  /** The CA that signed the server's certificate. */
  caFile: string;
}

export interface Transfer {
  status: number;
  bytes: number;
  seconds: number;
  /** curl's `time_starttransfer`: from the start until the first byte of the answer arrived. */
  firstByteSeconds: number;
  /** curl's user plus system CPU time, start-up included: near `seconds`, the client set the pace. */
  clientCpuSeconds: number;
}

export interface DownloadOptions {
  /** Fail unless exactly this many bytes arrived. */
  bytes?: number;
  /** Request headers, e.g. the manifest media type as Accept. */
  headers?: Record<string, string>;
}

/** GETs `path` from `endpoint`; throws unless curl succeeded with a 200 (and the expected size). */
export async function download(sandbox: Sandbox, endpoint: Endpoint, path: string, options: DownloadOptions = {}): Promise<Transfer> {
  const expectBytes = options.bytes;
  const result = await sandbox.exec(
    'bash',
    [
      '-c',
      // `time` reports on the shell's stderr, after anything curl wrote there.
      'TIMEFORMAT="cpu %3U %3S"; time curl "$@"',
      'curl',
      '-sS', '--http1.1', '-o', '/dev/null',
      '--cacert', endpoint.caFile,
      '--resolve', `${endpoint.host}:443:${endpoint.address}`,
      '-w', '%{http_code} %{size_download} %{time_total} %{time_starttransfer}',
      ...Object.entries(options.headers ?? {}).flatMap(([name, value]) => ['-H', `${name}: ${value}`]),
      `https://${endpoint.host}${path}`,
    ],
    { timeoutMs: 300_000 },
  );
  const [status, bytes, seconds, firstByte] = result.stdout.trim().split(' ').map(Number);
  const cpu = /^cpu ([\d.]+) ([\d.]+)$/m.exec(result.stderr);
  const clientCpuSeconds = cpu ? Number(cpu[1]) + Number(cpu[2]) : Number.NaN;
  const transfer = { status: status ?? 0, bytes: bytes ?? 0, seconds: seconds ?? 0, firstByteSeconds: firstByte ?? 0, clientCpuSeconds };
  if (result.code !== 0 || transfer.status !== 200 || (expectBytes !== undefined && transfer.bytes !== expectBytes)) {
    throw new Error(`GET https://${endpoint.host}${path}: curl ${result.code}, ${result.stdout.trim()} (expected 200 and ${expectBytes ?? 'any'} bytes)\n${result.stderr}`);
  }
  return transfer;
}
