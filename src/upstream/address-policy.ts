import { BlockList, isIP } from 'node:net';

/** Address ranges a storage fetch or a token realm must not reach unless allowed, with the word an error message uses. */
const FORBIDDEN: ReadonlyArray<readonly [cidr: string, kind: string]> = [
  ['0.0.0.0/8', 'unspecified'],
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'private (shared address space)'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'reserved'],
  ['192.168.0.0/16', 'private'],
  ['198.18.0.0/15', 'reserved (benchmarking)'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved'],
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'site-local'],
  ['fc00::/7', 'unique local (private)'],
  // A site's NAT64 prefix may be any /96 of the local-use /48 (RFC 8215), to private IPv4 networks too;
  // only the /96 at its start is decoded (embeddedIpv4), and judged by the IPv4 address it carries.
  ['64:ff9b:1::/48', 'NAT64 (local use)'],
  ['ff00::/8', 'multicast'],
];

const cidrPattern = /^([^/]+)\/(\d{1,3})$/;

/** `10.0.0.0/8`, `fd00::/8` or a bare address (a /32 or /128); null when malformed. */
export function parseCidr(text: string): { address: string; prefix: number; family: 4 | 6 } | null {
  const match = cidrPattern.exec(text.trim());
  const address = match ? match[1]! : text.trim();
  const family = isIP(address);
  if (family !== 4 && family !== 6) return null;
  const max = family === 4 ? 32 : 128;
  const prefix = match ? Number(match[2]) : max;
  return prefix <= max ? { address, prefix, family } : null;
}

function blockListOf(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const parsed = parseCidr(cidr);
    if (!parsed) throw new RangeError(`not a network: ${cidr}`);
    list.addSubnet(parsed.address, parsed.prefix, parsed.family === 4 ? 'ipv4' : 'ipv6');
  }
  return list;
}

const FORBIDDEN_LISTS = FORBIDDEN.map(([cidr, kind]) => ({ kind, list: blockListOf([cidr]) }));
const LOCAL_NAT64 = blockListOf(['64:ff9b:1::/48']);

/** The 16 bytes of an IPv6 address (with or without an embedded dotted quad). */
function ipv6Bytes(address: string): Buffer {
  let text = address.split('%')[0]!;
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (quad) {
    const [a, b, c, d] = quad[1]!.split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, -quad[1]!.length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::') as [string, string | undefined];
  const groups = (part: string): string[] => (part === '' ? [] : part.split(':'));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const middle = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0');
  const bytes = Buffer.alloc(16);
  [...left, ...middle, ...right].forEach((group, i) => bytes.writeUInt16BE(parseInt(group, 16), i * 2));
  return bytes;
}

/**
 * The IPv4 address an IPv6 address stands for, when it embeds one in a way that may reach that IPv4
 * host: IPv4-mapped (::ffff:a.b.c.d), IPv4-translated (::ffff:0:a.b.c.d, SIIT), IPv4-compatible
 * (::a.b.c.d, deprecated but parsed by some stacks), NAT64 at the well-known prefix (64:ff9b::/96)
 * or a site's local-use one (64:ff9b:1::/96, RFC 8215: a DNS64 of the site's own may hand it out for
 * the internet and its private networks alike) and 6to4 (2002:AABB:CCDD::/48). Checking only the IPv6
 * form would let `::ffff:127.0.0.1` through.
 */
function embeddedIpv4(address: string): string | undefined {
  const b = ipv6Bytes(address);
  const quad = (offset: number): string => [...b.subarray(offset, offset + 4)].join('.');
  const zeros = (from: number, to: number): boolean => b.subarray(from, to).every((x) => x === 0);
  if (zeros(0, 10) && b[10] === 0xff && b[11] === 0xff) return quad(12);
  if (zeros(0, 8) && b.readUInt16BE(8) === 0xffff && zeros(10, 12)) return quad(12);
  if (zeros(0, 12)) return quad(12);
  if (b.readUInt32BE(0) === 0x0064ff9b && (zeros(4, 12) || (b.readUInt16BE(4) === 1 && zeros(6, 12)))) return quad(12);
  if (b.readUInt16BE(0) === 0x2002) return quad(2);
  return undefined;
}

/** An address as the policy compares it: IPv4 as it is, IPv6 lower-case, IPv4-mapped IPv6 as IPv4. */
export function normalizeAddress(address: string): string {
  const bare = address.replace(/^\[|\]$/g, '');
  if (isIP(bare) !== 6) return bare;
  const b = ipv6Bytes(bare);
  if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return [...b.subarray(12)].join('.');
  return bare.toLowerCase();
}

export interface AddressVerdict {
  allowed: boolean;
  /** Why not: e.g. "loopback". */
  kind?: string;
}

/**
 * Which addresses Layover may connect to for a URL an upstream handed it (a storage redirect's
 * `Location`, a token realm), and the CONNECT proxy for a tunnel: anything public, and of the
 * loopback, link-local, private, unique-local, unspecified, multicast and reserved ranges only
 * what REDIRECT_ALLOW_NETWORKS lists or what the caller vouches for (the redirecting registry's
 * own address). Without this, a redirect or a realm (or a signed URL, should the key leak) would
 * make Layover fetch from its own host, the cloud metadata service at 169.254.169.254 or the
 * internal network.
 */
export class AddressPolicy {
  readonly #allowed: BlockList;

  constructor(allowNetworks: readonly string[]) {
    this.#allowed = blockListOf(allowNetworks);
  }

  /** `upstreamAddresses`: the addresses of the registry the redirect came from (normalized). */
  check(address: string, upstreamAddresses: ReadonlySet<string> = new Set()): AddressVerdict {
    const normalized = normalizeAddress(address);
    const family = isIP(normalized);
    if (family === 0) return { allowed: false, kind: 'malformed' };
    const embedded = family === 6 ? embeddedIpv4(normalized) : undefined;
    const forms = embedded ? [normalized, embedded] : [normalized];
    const typeOf = (form: string): 'ipv4' | 'ipv6' => (isIP(form) === 4 ? 'ipv4' : 'ipv6');
    if (forms.some((form) => upstreamAddresses.has(form) || this.#allowed.check(form, typeOf(form)))) return { allowed: true };
    // A decoded local-use NAT64 address is the IPv4 address it carries, nothing else.
    const judged = embedded !== undefined && LOCAL_NAT64.check(normalized, 'ipv6') ? [embedded] : forms;
    for (const form of judged) {
      const hit = FORBIDDEN_LISTS.find(({ list }) => list.check(form, typeOf(form)));
      if (hit) return { allowed: false, kind: hit.kind };
    }
    return { allowed: true };
  }
}
