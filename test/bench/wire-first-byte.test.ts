/**
 * Self-tests of the wire split of a cold first byte in bench/ (bench/lib/wire-first-byte.ts): the
 * parser reads tcpdump's own lines, the split finds the four moments of one download (and counts a
 * new upstream connection's handshake and the client's session tickets where they belong), and a
 * real capture in the bench's sandbox splits a cold miss through Layover but finds no upstream in a
 * hit. pull-throughput's first-byte target is this split: it means nothing if the split picked the
 * wrong packets.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { download } from '../../bench/lib/curl.js';
import { firstByteShares, type Packet, parseTcpdump, startWireCapture } from '../../bench/lib/wire-first-byte.js';
import { type Bench, INTERCEPTED_HOST, REGISTRY_ADDRESS, startBench } from './bench.js';

/** Two packets as tcpdump 4.99 printed them (`-tt -n -q -x -s 128`), from a capture of a cold miss. */
const TCPDUMP_OUTPUT = `tcpdump: verbose output suppressed, use -v[v]... for full protocol decode
listening on lo, link-type EN10MB (Ethernet), snapshot length 128 bytes
1796527377.641163 IP 127.0.0.1.43200 > 127.0.0.1.443: tcp 517
\t0x0000:  4500 0239 5020 4000 4006 ea9c 7f00 0001
\t0x0010:  7f00 0001 a8c0 01bb b418 0fa6 222d 02aa
\t0x0020:  8018 0040 002e 0000 0101 080a c7c6 8141
\t0x0030:  8003 03bf 1603 0102 0001 0001 fc03 03df
\t0x0040:  ff3d 0e94 6f4e 1431 33a4 7e11 e180 e378
1796527377.646688 IP 127.0.0.1.33544 > 127.0.0.2.443: tcp 243
\t0x0000:  4500 0127 8854 4000 4006 b379 7f00 0001
\t0x0010:  7f00 0002 8308 01bb 37b9 8ffd e78d f663
\t0x0020:  8018 007f ff1c 0000 0101 080a 59b3 18ac
\t0x0030:  9b89 f98b 1703 0300 eeb5 59a6 c1fb c8f1
2 packets captured
`;

const PROXY = '127.0.0.1';
const UPSTREAM = '127.0.0.2';
const CLIENT = '127.0.0.1.40000';
const PROXY_PORT = `${PROXY}.443`;
const PROXY_SIDE = '127.0.0.1.50000';
const UPSTREAM_PORT = `${UPSTREAM}.443`;
const HANDSHAKE = 0x16;
const CHANGE_CIPHER_SPEC = 0x14;
const DATA = 0x17;

/** A packet at `ms` milliseconds. */
const at = (ms: number, from: string, to: string, length: number, firstByte: number): Packet => ({ time: 1000 + ms / 1000, from, to, length, firstByte });

/** The client's handshake with the proxy and its request at 2 ms. */
const clientSide = (): Packet[] => [
  at(0, CLIENT, PROXY_PORT, 517, HANDSHAKE),
  at(1, PROXY_PORT, CLIENT, 1186, HANDSHAKE),
  at(1.9, CLIENT, PROXY_PORT, 64, CHANGE_CIPHER_SPEC),
  at(2, CLIENT, PROXY_PORT, 192, DATA),
];

describe('the wire split of a first byte (bench/lib/wire-first-byte.ts)', () => {
  test('reads tcpdump\'s lines: addresses, ports, lengths and the first payload byte', () => {
    expect(parseTcpdump(TCPDUMP_OUTPUT)).toEqual([
      { time: 1796527377.641163, from: '127.0.0.1.43200', to: '127.0.0.1.443', length: 517, firstByte: HANDSHAKE },
      { time: 1796527377.646688, from: '127.0.0.1.33544', to: '127.0.0.2.443', length: 243, firstByte: DATA },
    ]);
  });

  test('a kept-alive upstream: the upstream\'s part is its request to its answer, the rest is the proxy\'s', () => {
    const split = firstByteShares(
      [
        ...clientSide(),
        at(2.5, PROXY_SIDE, UPSTREAM_PORT, 243, DATA),
        at(5.5, UPSTREAM_PORT, PROXY_SIDE, 4118, DATA),
        at(5.6, UPSTREAM_PORT, PROXY_SIDE, 16406, DATA),
        at(6.2, PROXY_PORT, CLIENT, 462, DATA),
      ],
      PROXY,
      UPSTREAM,
    );
    expect(split?.clientWaitMs).toBeCloseTo(4.2, 6);
    expect(split?.upstreamMs).toBeCloseTo(3, 6);
    expect(split?.proxyMs).toBeCloseTo(1.2, 6);
    expect(split?.beforeUpstreamMs).toBeCloseTo(0.5, 6);
    expect(split?.afterUpstreamMs).toBeCloseTo(0.7, 6);
  });

  test('a new upstream connection\'s handshake is the proxy\'s time; session tickets sent before the answer are not the first byte', () => {
    const handshake = [
      at(2.1, PROXY_PORT, CLIENT, 542, DATA), // the proxy's session tickets, after the request came
      at(2.3, PROXY_SIDE, UPSTREAM_PORT, 1605, HANDSHAKE),
      at(3.3, UPSTREAM_PORT, PROXY_SIDE, 1007, HANDSHAKE),
    ];
    const answered = [
      at(4.2, UPSTREAM_PORT, PROXY_SIDE, 40, DATA), // too short to be an answer: an HTTP/2 control frame
      at(7.1, UPSTREAM_PORT, PROXY_SIDE, 1208, DATA),
      at(7.5, PROXY_PORT, CLIENT, 462, DATA),
    ];
    // Node's client sends its Finished and the request in one segment; curl's, in two.
    const together = firstByteShares([...clientSide(), ...handshake, at(4.1, PROXY_SIDE, UPSTREAM_PORT, 304, CHANGE_CIPHER_SPEC), ...answered], PROXY, UPSTREAM);
    const apart = firstByteShares(
      [...clientSide(), ...handshake, at(4, PROXY_SIDE, UPSTREAM_PORT, 64, CHANGE_CIPHER_SPEC), at(4.1, PROXY_SIDE, UPSTREAM_PORT, 243, DATA), ...answered],
      PROXY,
      UPSTREAM,
    );
    for (const split of [together, apart]) {
      expect(split?.upstreamMs).toBeCloseTo(3, 6);
      expect(split?.clientWaitMs).toBeCloseTo(5.5, 6);
      expect(split?.proxyMs).toBeCloseTo(2.5, 6);
      expect(split?.beforeUpstreamMs).toBeCloseTo(2.1, 6);
      expect(split?.afterUpstreamMs).toBeCloseTo(0.4, 6);
    }
  });

  test('no split without all four moments', () => {
    const asked = [...clientSide(), at(2.5, PROXY_SIDE, UPSTREAM_PORT, 243, DATA)];
    expect(firstByteShares(clientSide(), PROXY, UPSTREAM)).toBeUndefined(); // a hit: no upstream
    expect(firstByteShares(asked, PROXY, UPSTREAM)).toBeUndefined(); // no answer captured
    expect(firstByteShares([...asked, at(5, UPSTREAM_PORT, PROXY_SIDE, 4118, DATA)], PROXY, UPSTREAM)).toBeUndefined(); // nothing sent on
    expect(firstByteShares([...asked, at(5, UPSTREAM_PORT, PROXY_SIDE, 4118, DATA), at(6, PROXY_PORT, CLIENT, 462, DATA)], '127.0.0.9', UPSTREAM)).toBeUndefined();
  });
});

describe('the wire split of a real download through Layover', () => {
  let bench: Bench;
  beforeAll(async () => {
    bench = await startBench({ images: ['oci'] });
  }, 180_000);
  afterAll(() => bench?.close());

  test('a cold miss splits into the upstream\'s part and Layover\'s; a hit has no upstream part', async () => {
    const image = bench.images.oci!;
    const blob = [...image.blobs].sort((a, b) => b.size - a.size)[0]!;
    const endpoint = { host: INTERCEPTED_HOST, address: '127.0.0.1', caFile: bench.layover!.caFile };
    const path = `/v2/${image.repository}/blobs/${blob.digest}`;
    const fetchCaptured = async (): Promise<Packet[]> => {
      const capture = await startWireCapture(bench.sandbox);
      await download(bench.sandbox, endpoint, path, { bytes: blob.size });
      return capture.stop();
    };

    bench.registry.clearRequests();
    const cold = await fetchCaptured();
    await bench.registry.sync();
    expect(bench.registry.requests().filter((r) => r.method === 'GET' && r.path === path)).toHaveLength(1);
    const split = firstByteShares(cold, '127.0.0.1', REGISTRY_ADDRESS);
    expect(split).toBeDefined();
    expect(split!.upstreamMs).toBeGreaterThan(0);
    expect(split!.proxyMs).toBeGreaterThan(0);
    expect(split!.clientWaitMs).toBeCloseTo(split!.upstreamMs + split!.proxyMs, 6);
    expect(split!.proxyMs).toBeCloseTo(split!.beforeUpstreamMs + split!.afterUpstreamMs, 6);

    await bench.layover!.waitForLog((line) => line.msg === 'cache fill committed' && line.digest === blob.digest, 60_000);
    const warm = await fetchCaptured();
    expect(warm.some((p) => p.to === '127.0.0.1.443' && p.firstByte === 0x17)).toBe(true);
    expect(firstByteShares(warm, '127.0.0.1', REGISTRY_ADDRESS)).toBeUndefined();
  });
});
