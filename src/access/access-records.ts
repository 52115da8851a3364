import { setImmediate } from 'node:timers/promises';
import type { BlobCache } from '../cache/blob-cache.js';
import type { Digest } from '../registry/digest.js';
import { sourceIsRegistry } from '../registry/same-registry.js';
import { originHost } from '../upstream/origin-host.js';

/** `registry-1.docker.io/library/alpine`: upstream host (aliases resolved) and repository. */
export type RepositoryKey = string & { readonly __brand: 'RepositoryKey' };

export const repositoryKey = (origin: string, repository: string): RepositoryKey => `${originHost(origin)}/${repository}` as RepositoryKey;

/** The registry a client named and its upstream origin (src/access/read-access.ts ReadTarget). */
export interface HolderTarget {
  readonly registry: string;
  readonly origin: string;
}

/** Whether upstream served a repository to a reader, and when that was seen. */
export interface ReachRecord {
  readonly readable: boolean;
  readonly at: number;
}

/** Readers whose reach is recorded: nobody's credentials, or Layover's configured ones. */
export type Reader = 'anonymous' | 'layover';

/**
 * A digest is usually shared by many repositories (base layers), and a client
 * reading one of them may read the digest; so the repositories a digest was
 * seen in are kept, most recent first, bounded: a repository that drops out is
 * asked about again, which costs one HEAD.
 */
const MAX_REPOSITORIES_PER_DIGEST = 64;
/**
 * `@host` entries of a digest's record name the upstreams that gave Layover its verified bytes (a
 * fill from there committed) or showed them (a sample matched): only such an upstream is believed
 * when it says another of its repositories holds the digest. Kept in the same record (a digest's
 * look-up stays one), apart from the repositories, in their own bound.
 */
const HOLDER = '@';
const MAX_HOLDERS_PER_DIGEST = 16;

const MEMBER_PREFIX = 'access:member:';
/** Member records forgetEvicted looks at in one turn of the event loop. */
const FORGET_BATCH = 2_000;
const memberKey = (digest: Digest): string => `${MEMBER_PREFIX}${digest}`;
const isHolder = (entry: string): boolean => entry.startsWith(HOLDER);
const reachKey = (reader: Reader, repository: RepositoryKey): string => `access:${reader}:${repository}`;
const reachedKey = (host: string): string => `access:reached:${host}`;

/**
 * What Layover knows about who may read cached content, kept with the cache's
 * records so that it survives a restart (an outage right after one must not
 * turn public content into content nobody may read).
 */
export class AccessRecords {
  readonly #cache: BlobCache;

  /**
   * Replicas write a digest's record whole: a member added on one and a holder on another at the
   * same moment kept only the last written (a lost holder costs one more proof, a lost member one
   * more HEAD). Another replica's record is merged with this one's when it arrives.
   */
  static mergeAcrossReplicas(cache: BlobCache): void {
    cache.mergeRecords(MEMBER_PREFIX, mergeMemberRecords);
  }

  constructor(cache: BlobCache) {
    this.#cache = cache;
  }

  /** True when `digest` is known to exist in `repository` upstream. */
  isMember(digest: Digest, repository: RepositoryKey): boolean {
    return this.#cache.getRecord<string[]>(memberKey(digest))?.includes(repository) === true;
  }

  async addMember(digest: Digest, repository: RepositoryKey): Promise<void> {
    const known = this.#cache.getRecord<string[]>(memberKey(digest)) ?? [];
    const holders = known.filter(isHolder);
    const repositories = known.filter((entry) => !isHolder(entry));
    if (repositories[0] === repository) return;
    const next = [repository, ...repositories.filter((r) => r !== repository)].slice(0, MAX_REPOSITORIES_PER_DIGEST);
    await this.#cache.setRecord(memberKey(digest), [...holders, ...next]);
  }

  /**
   * True when upstream `target.origin` has given Layover the digest's verified bytes or shown them
   * (addHolder), or is the registry the cached copy came from (the entry's source: a commit verified
   * it; caches from before holders count so), or the one this replica's fill of it comes from (its
   * clients join it at once). Nothing else: a membership is recorded when a download starts, before
   * anything is verified. Another replica's fill is followed only by clients of its own registry
   * (src/proxy/peer-fill.ts fleetTurn).
   */
  heldBy(digest: Digest, target: HolderTarget): boolean {
    return this.#held(this.#cache.getRecord<string[]>(memberKey(digest)), digest, target);
  }

  /** isMember and heldBy in one look-up: a hit's question. */
  isHeldMember(digest: Digest, repository: RepositoryKey, target: HolderTarget): boolean {
    const known = this.#cache.getRecord<string[]>(memberKey(digest));
    return known !== undefined && known.includes(repository) && this.#held(known, digest, target);
  }

  #held(known: readonly string[] | undefined, digest: Digest, target: HolderTarget): boolean {
    if (known?.includes(`${HOLDER}${originHost(target.origin)}`)) return true;
    const source = this.#cache.stat(digest)?.source ?? this.#cache.activeFill(digest)?.meta.source;
    return source !== undefined && sourceIsRegistry(source, target.registry);
  }

  /** True while this replica holds the digest's bytes or a fill of it. */
  present(digest: Digest): boolean {
    return this.#cache.stat(digest) !== undefined || this.#cache.activeFill(digest) !== undefined;
  }

  /** True when this replica's bytes of the digest (a copy or a fill) are not `target`'s to have: not held by its registry, and not the empty blob. */
  othersBytes(digest: Digest, target: HolderTarget): boolean {
    const entry = this.#cache.stat(digest);
    if (entry ? entry.size === 0 : !this.#cache.activeFill(digest)) return false;
    return !this.heldBy(digest, target);
  }

  /** Upstream `origin` gave Layover the digest's verified bytes, or showed that it has them. */
  async addHolder(digest: Digest, origin: string): Promise<void> {
    const holder = `${HOLDER}${originHost(origin)}`;
    const known = this.#cache.getRecord<string[]>(memberKey(digest)) ?? [];
    if (known[0] === holder) return;
    const holders = [holder, ...known.filter((entry) => isHolder(entry) && entry !== holder)].slice(0, MAX_HOLDERS_PER_DIGEST);
    await this.#cache.setRecord(memberKey(digest), [...holders, ...known.filter((entry) => !isHolder(entry))]);
  }

  /**
   * Forgets where digests the cache no longer holds were seen: their next fill records it again,
   * and the records would otherwise grow with every digest ever pulled. Returns how many went.
   * Called once Layover listens (src/app.ts): it begins after the caller's turn and looks at a few
   * thousand records per turn of the event loop, so requests go on between (100,000 blobs' records in
   * one pass held the main thread for 60-90 ms).
   */
  async forgetEvicted(): Promise<number> {
    await setImmediate();
    const keys = this.#cache.recordKeys(MEMBER_PREFIX);
    let forgotten = 0;
    for (let start = 0; start < keys.length; start += FORGET_BATCH) {
      if (start > 0) await setImmediate();
      const gone = keys.slice(start, start + FORGET_BATCH).filter((key) => {
        const digest = key.slice(MEMBER_PREFIX.length) as Digest;
        return !this.#cache.stat(digest) && !this.#cache.activeFill(digest);
      });
      for (const key of gone) await this.#cache.deleteRecord(key);
      forgotten += gone.length;
    }
    return forgotten;
  }

  /**
   * True once `origin` has answered Layover (a ping, a manifest or a blob), so that it may stand in
   * for it during an outage. Caches from before this record count by their reach records.
   */
  wasReached(origin: string): boolean {
    const host = originHost(origin);
    if (this.#cache.getRecord(reachedKey(host)) !== undefined) return true;
    return (['anonymous', 'layover'] as const).some((reader) => this.#cache.recordKeys(`access:${reader}:${host}/`).length > 0);
  }

  async markReached(origin: string): Promise<void> {
    const key = reachedKey(originHost(origin));
    if (this.#cache.getRecord(key) === undefined) await this.#cache.setRecord(key, Date.now());
  }

  reach(reader: Reader, repository: RepositoryKey): ReachRecord | undefined {
    return this.#cache.getRecord<ReachRecord>(reachKey(reader, repository));
  }

  async setReach(reader: Reader, repository: RepositoryKey, readable: boolean, at: number): Promise<void> {
    const known = this.reach(reader, repository);
    if (known?.readable === readable && at - known.at < 60_000) return; // spare the index a write per request
    await this.#cache.setRecord<ReachRecord>(reachKey(reader, repository), { readable, at });
  }
}

/**
 * Two replicas' values of a digest's record as one: the arrived one as it is, then what only this
 * replica had, each kind within its bound. The arrived value comes back unchanged (deep-equal) once it
 * holds all of this replica's entries, or when the bounds leave no room for them: no write back and
 * forth between replicas.
 */
export function mergeMemberRecords(local: unknown, remote: unknown): unknown {
  if (!Array.isArray(local) || !Array.isArray(remote)) return remote;
  const theirs = remote.filter((entry): entry is string => typeof entry === 'string');
  const missing = local.filter((entry): entry is string => typeof entry === 'string' && !theirs.includes(entry));
  if (missing.length === 0) return remote;
  const holders = [...theirs.filter(isHolder), ...missing.filter(isHolder)].slice(0, MAX_HOLDERS_PER_DIGEST);
  const repositories = [...theirs.filter((entry) => !isHolder(entry)), ...missing.filter((entry) => !isHolder(entry))].slice(0, MAX_REPOSITORIES_PER_DIGEST);
  return [...holders, ...repositories];
}
