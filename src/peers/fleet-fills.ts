import type { FastifyBaseLogger } from 'fastify';
import { isIP } from 'node:net';
import type { HostPort } from '../config/parsers.js';
import { fillLeaseName, type Lease, type LeaseStore, MAX_NOTE } from '../cache/lease.js';
import type { Digest } from '../registry/digest.js';

/**
 * How long a fill's lease lasts without renewal: after a holder died (kill -9, a lost node), the
 * others wait at most this long before one of them fetches the blob itself.
 */
export const FILL_LEASE_MS = 8_000;
const RENEW_EVERY_MS = FILL_LEASE_MS / 4;
/** Between looks at a lease whose holder cannot be reached, until it expires. */
const RETRY_MS = 250;
/** A holder that could not be reached is not dialled again for this long (its lease runs out meanwhile). */
const SUSPECT_MS = FILL_LEASE_MS;

export type FillDecision =
  /** This replica fetches the blob: hold `claim` until the fill ends (`claim.keepFor(fill.done)`), or release it. */
  | { readonly kind: 'mine'; readonly claim: FillClaim }
  /** Another replica is fetching it from upstream `origin` (`host[:port]`; null from a replica that did not say): follow that fill. */
  | { readonly kind: 'peer'; readonly peer: HostPort; readonly origin: string | null }
  /** Nobody can be asked (the index is down) or the owner did not come back in time: fetch it without a claim. */
  | { readonly kind: 'alone'; readonly why: string };

/**
 * One upstream fetch per digest across the replicas of a shared index. The replica that takes the
 * digest's fill lease fetches it; its lease's note says where the others reach it, and they stream
 * its fill (peer-fill in src/proxy/). Chosen over hashing digests onto a membership list because the
 * lease is exact whatever each replica believes about the others: during a rollout, replicas that
 * disagree on who is alive would fetch twice, two leases never coexist. The price is one round trip to
 * the index per miss, next to an upstream download.
 */
export class FleetFills {
  readonly #leases: LeaseStore;
  readonly #self: string;
  readonly #logger: FastifyBaseLogger;
  readonly #suspects = new Map<string, number>();

  constructor(leases: LeaseStore, self: HostPort, logger: FastifyBaseLogger) {
    this.#leases = leases;
    this.#self = noteOf(self);
    this.#logger = logger;
  }

  /**
   * Who fetches `digest`, which this replica would fetch from upstream `origin` (`host[:port]`): the
   * lease's note names it after the holder's address, so that a replica whose client asked another
   * registry does not join a fill of this one (src/access/: whose word is taken). A holder this replica
   * cannot reach (marked with `unreachable`) is waited out until its lease expires, at most `waitMs`;
   * then this replica takes over.
   */
  async decide(digest: Digest, origin: string, waitMs = FILL_LEASE_MS + RETRY_MS * 4): Promise<FillDecision> {
    const name = fillLeaseName(digest);
    const deadline = Date.now() + waitMs;
    // An origin too long for a note goes unsaid: the others then fetch alone rather than follow.
    const noted = `${this.#self} ${origin}`;
    const ownNote = noted.length <= MAX_NOTE ? noted : this.#self;
    for (;;) {
      let note: string | null;
      try {
        const lease = await this.#leases.acquireLease(name, FILL_LEASE_MS, { unfenced: true, note: ownNote });
        if (lease) return { kind: 'mine', claim: new FillClaim(lease, digest, this.#logger) };
        note = await this.#leases.leaseNote(name);
      } catch (error) {
        // Availability first: a replica that cannot reach the index fetches for itself.
        this.#logger.warn({ err: error, digest }, 'fleet fills: the index cannot be asked who fetches this blob; fetching it here');
        return { kind: 'alone', why: 'index unreachable' };
      }
      // Released between the two questions: ask again at once (while there is time).
      if (note === null && Date.now() < deadline) continue;
      if (note === null) return { kind: 'alone', why: 'the lease kept changing hands' };
      const [address = '', fillOrigin] = note.split(' ');
      const peer = peerOf(address);
      if (!peer) {
        this.#logger.warn({ digest, note: note.slice(0, 80) }, 'fleet fills: a fill lease names no address; waiting for it to expire');
      } else if (address === this.#self) {
        // This address's holder is not this process (it has no such fill): a previous life of this replica.
      } else if (!this.#isSuspect(address)) {
        return { kind: 'peer', peer, origin: fillOrigin ?? null };
      }
      if (Date.now() >= deadline) return { kind: 'alone', why: 'the fetching replica cannot be reached' };
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }

  /** The peer could not be reached: its lease is waited out rather than dialled again. */
  unreachable(peer: HostPort): void {
    this.#suspects.set(noteOf(peer), Date.now() + SUSPECT_MS);
  }

  #isSuspect(note: string): boolean {
    const until = this.#suspects.get(note);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.#suspects.delete(note);
    return false;
  }
}

/** This replica's right to fetch a digest for the fleet: renewed while its fill runs, released when it ends. */
export class FillClaim {
  readonly #lease: Lease;
  readonly #digest: Digest;
  readonly #logger: FastifyBaseLogger;
  #timer: NodeJS.Timeout | undefined;
  #released = false;

  constructor(lease: Lease, digest: Digest, logger: FastifyBaseLogger) {
    this.#lease = lease;
    this.#digest = digest;
    this.#logger = logger;
    // Renewed from the start: the upstream's answer (a token fetch, a slow registry) may take longer than the lease.
    this.#timer = setInterval(() => {
      this.#lease.renew().then(
        (held) => {
          // Expired under a slow index: another replica may fetch too; this fill goes on regardless.
          if (!held) this.#stopRenewing();
        },
        (error: unknown) => this.#logger.debug({ err: error, digest: this.#digest }, 'fleet fills: a fill lease could not be renewed'),
      );
    }, RENEW_EVERY_MS);
    this.#timer.unref();
  }

  /** Holds the claim until `done` settles (the fill committed or failed), then releases it. */
  keepFor(done: Promise<unknown>): void {
    done.then(
      () => this.release(),
      () => this.release(),
    );
  }

  /** Gives the digest back to the fleet (no fill came of it, or it ended). */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#stopRenewing();
    this.#lease.release().catch((error: unknown) => this.#logger.debug({ err: error, digest: this.#digest }, 'fleet fills: a fill lease could not be released; it expires'));
  }

  #stopRenewing(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/** `host:port`, IPv6 in brackets: what a fill lease says of its holder. */
function noteOf(address: HostPort): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

/** The address in a lease's note: it comes from the shared index, so nothing but an IP literal and a port. */
function peerOf(note: string): HostPort | null {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3})):(\d{1,5})$/.exec(note);
  if (!match) return null;
  const host = match[1] ?? match[2]!;
  const port = Number(match[3]);
  if (isIP(host) === 0 || port < 1 || port > 65_535) return null;
  return { host, port };
}
