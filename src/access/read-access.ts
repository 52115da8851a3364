import { createHash } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { HostnameSet } from '../registry/hostname.js';
import { OciError } from '../registry/oci-errors.js';
import type { RepositoryName } from '../registry/repository-name.js';
import { LruMap } from '../tls/lru-map.js';
import { clientBringsCredentials } from '../upstream/auth/upstream-auth.js';
import { type AccessRecords, type Reader, type ReachRecord, repositoryKey, type RepositoryKey } from './access-records.js';
import type { CachedObject, ProbeCredential, ProbeResult, UpstreamProbe } from './upstream-probe.js';

/** Where the object is asked for: the registry name the client used and its upstream origin. */
export interface ReadTarget {
  readonly registry: string;
  readonly origin: string;
}

/** Serve the cached bytes, or refuse with `error` (and the upstream's challenge, for a 401). */
export type ReadDecision = { readonly allowed: true; readonly why: string } | { readonly allowed: false; readonly error: OciError; readonly challenge?: string | string[] };

export interface ReadAccessOptions {
  records: AccessRecords;
  probe: UpstreamProbe;
  /** Layover authenticates clients (its access policy already allowed this request) or lets everyone in. */
  clientAuthOn: boolean;
  /** Layover holds credentials that apply to this origin (UpstreamAuth.concerns). */
  layoverCredentials: (origin: string) => boolean;
  ttlMs: number;
  anonymousTtlMs: number;
  /** Registry patterns whose cached content is served when upstream cannot be asked. */
  failOpen: readonly string[];
  now?: () => number;
}

type Log = Pick<FastifyBaseLogger, 'warn' | 'debug'>;

const allowed = (why: string): ReadDecision => ({ allowed: true, why });

/**
 * Decides whether a client may have cached bytes of a repository that may need
 * credentials: the cache holds one copy per digest, so without this a client
 * could read what another client's credentials fetched.
 *
 * A digest is served under a repository only when it is known to exist there
 * (it was fetched from there, or upstream said so to a HEAD), and only to a
 * reader of that repository: with client authentication on, the access policy
 * decides (Layover's own credentials are what fetched it); with it off, the
 * upstream does: a repository it serves anonymously is open to all, otherwise
 * the client's own credentials (or Layover's, which it would get anyway) are
 * checked with a HEAD, remembered per credential and repository for `ttlMs`.
 * When upstream cannot be asked, access fails closed unless the registry is
 * listed in `failOpen`; a repository last seen public stays public.
 */
export class ReadAccess {
  readonly #options: ReadAccessOptions;
  /** ACCESS_CHECK_FAIL_OPEN: host patterns, each for one port or (`port` null) for every port. */
  readonly #failOpen: ReadonlyArray<{ names: HostnameSet; port: string | null }>;
  readonly #now: () => number;
  /** `credential|repository` -> when a HEAD with a client's own credentials succeeded. */
  readonly #granted = new LruMap<string, number>(10_000);
  /** One probe at a time per question: a burst of hits costs one HEAD. */
  readonly #asking = new Map<string, Promise<ProbeResult>>();
  /** Repositories whose anonymous access is being learnt after a fill. */
  readonly #learning = new Map<RepositoryKey, Promise<unknown>>();
  /** `host|digest` -> when that upstream could not show the digest's bytes: not asked again meanwhile (each try is a guess). */
  readonly #refuted = new LruMap<string, number>(10_000);
  /**
   * `reader|repository` -> a refusal for a repository the digest is not known in: kept in memory
   * only, and bounded. A client may name any number of repositories, each one a record kept for good
   * (and loaded at every start) had it been written with the others.
   */
  readonly #refusedElsewhere = new LruMap<string, ReachRecord>(10_000);
  /** The last challenge each origin sent without credentials, for refusals decided from a record. */
  readonly #challenges = new LruMap<string, string | string[]>(1000);

  constructor(options: ReadAccessOptions) {
    this.#options = options;
    this.#failOpen = options.failOpen.map((pattern) => {
      const [host, port] = pattern.split(':');
      return { names: new HostnameSet([host!]), port: port ?? null };
    });
    this.#now = options.now ?? Date.now;
  }

  /**
   * The `why` of a yes that check would give from what is in memory alone (fresh records, a fresh
   * grant), without asking upstream or writing a record; undefined when only check can decide. A hit
   * whose answer is known goes on at once, without a turn of the event loop.
   */
  allowedNow(target: ReadTarget, name: RepositoryName, object: CachedObject, authorization: string | undefined): string | undefined {
    const repository = repositoryKey(target.origin, name);
    // Every yes below needs the digest known in the repository; otherwise check asks upstream.
    if (!this.#known(target, name, object)) return undefined;
    if (this.#options.clientAuthOn) return 'policy';
    const anonymous = this.#options.records.reach('anonymous', repository);
    if (!this.#fresh(anonymous)) return undefined;
    if (anonymous!.readable) return 'anonymous';
    const reader = this.#readerOf(target.origin, authorization);
    if (reader === 'anonymous') return undefined;
    if (reader === 'layover') {
      const layover = this.#options.records.reach('layover', repository);
      return this.#fresh(layover) && layover!.readable ? 'layover' : undefined;
    }
    const granted = this.#granted.get(`${credentialKey({ kind: 'client', authorization: authorization! })}|${repository}`);
    return granted !== undefined && this.#now() - granted < this.#options.ttlMs ? 'checked' : undefined;
  }

  async check(target: ReadTarget, name: RepositoryName, object: CachedObject, authorization: string | undefined, log: Log): Promise<ReadDecision> {
    const known = this.allowedNow(target, name, object, authorization);
    if (known !== undefined) return allowed(known);
    const member = this.#known(target, name, object);
    // The policy allowed this client; Layover's own credentials are what filled the cache.
    if (this.#options.clientAuthOn) {
      if (member) return allowed('policy');
      const decision = await this.#asReader('layover', target, name, object, member, log);
      if (decision.allowed || decision.error.code !== 'UNAUTHORIZED') return withoutChallenge(decision);
      // Never the upstream's challenge: it would send the client, with its Layover password, to the upstream's realm.
      return { allowed: false, error: new OciError('DENIED', `Layover's credentials do not reach ${target.registry}/${name}`) };
    }

    const anonymous = await this.#asReader('anonymous', target, name, object, member, log);
    if (anonymous.allowed) return anonymous;
    const reader = this.#readerOf(target.origin, authorization);
    if (reader === 'anonymous') return anonymous;
    if (reader === 'layover') return this.#asReader('layover', target, name, object, member, log);

    const credential: ProbeCredential = { kind: 'client', authorization: authorization! };
    const grantKey = `${credentialKey(credential)}|${repositoryKey(target.origin, name)}`;
    const granted = this.#granted.get(grantKey);
    if (member && granted !== undefined && this.#now() - granted < this.#options.ttlMs) return allowed('checked');
    const result = await this.#ask(credential, target, name, object, log);
    // The client's own credential may be what the upstream cannot answer (a token it rate-limits, a
    // header it chokes on): only Layover's own question finds the upstream down for fail-open.
    const mayFailOpen = answerOf(result) === null && member && this.#failsOpen(target) && answerOf(await this.#ask({ kind: 'anonymous' }, target, name, object, log)) === null;
    const decision = await this.#conclude(result, target, name, object, member, 'checked', log, mayFailOpen);
    // Only upstream's yes is a grant: one given because upstream could not answer (fail-open) must not outlive the outage.
    if (decision.allowed && answerOf(result)) this.#granted.set(grantKey, this.#now());
    return decision;
  }

  /**
   * Upstream gave `object` of `name` to a request sent with `authorization`: the digest is a
   * member of the repository, and the reader that fetched it (nobody, Layover) reaches it.
   */
  async recordFetched(target: ReadTarget, name: RepositoryName, object: CachedObject, authorization: string | undefined, log: Log): Promise<void> {
    const repository = repositoryKey(target.origin, name);
    const reader = this.#readerOf(target.origin, authorization);
    // Both are in memory once called (persisted after): a client joining this fill on the next tick finds them.
    const writes = [this.#options.records.addMember(object.digest, repository), this.#options.records.markReached(target.origin)];
    if (reader !== 'client') writes.push(this.#options.records.setReach(reader, repository, true, this.#now()));
    await Promise.all(writes);
    // Learn now, while upstream is there, whether the repository is public: an outage later must not lock it.
    if (this.#options.clientAuthOn || reader === 'anonymous' || this.#fresh(this.#options.records.reach('anonymous', repository)) || this.#learning.has(repository)) return;
    // Upstream just gave this object (or is giving it): its HEAD answers, no bytes need showing.
    const learning = this.#asReader('anonymous', target, name, object, true, log, true).finally(() => this.#learning.delete(repository));
    this.#learning.set(repository, learning);
    await learning;
  }

  /**
   * False when the bytes a yes would serve now are another registry's (a copy or fill that arrived
   * while upstream was asked): the caller checks again before it serves.
   */
  servesOwnBytes(target: ReadTarget, object: CachedObject): boolean {
    return !this.#options.records.othersBytes(object.digest, target);
  }

  /** Upstream `target.origin` gave Layover (or showed) the verified bytes of `object`: fill committed, manifest stored. */
  async recordHeld(target: ReadTarget, object: CachedObject): Promise<void> {
    await this.#options.records.addHolder(object.digest, target.origin);
  }

  /**
   * The digest is known in the repository, and its upstream is one that gave Layover (or showed) the
   * bytes: a registry's word that it holds a digest it never gave is not taken (see #ask).
   */
  #known(target: ReadTarget, name: RepositoryName, object: CachedObject): boolean {
    return this.#options.records.isHeldMember(object.digest, repositoryKey(target.origin, name), target);
  }

  /** Whose credentials a request carries upstream: the client's own, else Layover's (if it holds some for `origin`), else none. */
  #readerOf(origin: string, authorization: string | undefined): Reader | 'client' {
    if (!this.#options.clientAuthOn && clientBringsCredentials(authorization)) return 'client';
    return this.#options.layoverCredentials(origin) ? 'layover' : 'anonymous';
  }

  /**
   * What a recorded reader may do: a fresh record decides without asking upstream; otherwise a
   * HEAD with its credentials, whose answer is recorded; when upstream cannot be asked, the last
   * record that says yes still does (an outage does not make public content private).
   */
  async #asReader(reader: Reader, target: ReadTarget, name: RepositoryName, object: CachedObject, member: boolean, log: Log, fromSource = false): Promise<ReadDecision> {
    const repository = repositoryKey(target.origin, name);
    const kept = this.#options.records.reach(reader, repository);
    const record = kept ?? this.#refusedElsewhere.get(`${reader}|${repository}`);
    if (this.#fresh(record)) {
      if (record!.readable && member) return allowed(reader);
      if (!record!.readable) return this.#conclude({ status: 401 }, target, name, object, member, reader, log);
    }
    const result = await this.#ask({ kind: reader }, target, name, object, log, fromSource);
    const answer = answerOf(result);
    if (!answer) {
      if (record?.readable && member) return allowed(`${reader} (upstream unreachable)`);
      return this.#conclude(result, target, name, object, member, reader, log);
    }
    if (answer.status < 400) await this.#options.records.setReach(reader, repository, true, this.#now());
    // A repository already on record is written over (a yes turned no must not outlive its word in an outage).
    else if ((answer.status === 401 || answer.status === 403) && !member && !kept) this.#refusedElsewhere.set(`${reader}|${repository}`, { readable: false, at: this.#now() });
    else if (answer.status === 401 || answer.status === 403) await this.#options.records.setReach(reader, repository, false, this.#now());
    if (reader === 'anonymous' && answer.status === 401 && answer.challenge) this.#challenges.set(target.origin, answer.challenge);
    log.debug({ registry: target.registry, repo: name, digest: object.digest, reader, status: answer.status }, 'asked upstream who may read a cached object');
    return this.#conclude(answer, target, name, object, member, reader, log);
  }

  /**
   * Turns a probe's answer into a decision; a yes also records the digest in the repository. `member`:
   * the digest is known to be in the repository (fail-open serves only such cached content: a digest
   * cached from another repository or registry is never served under this one on an outage's word).
   */
  async #conclude(result: ProbeResult, target: ReadTarget, name: RepositoryName, object: CachedObject, member: boolean, why: string, log: Log, mayFailOpen = true): Promise<ReadDecision> {
    const where = `${target.registry}/${name}`;
    const answer = answerOf(result);
    if (!answer) {
      if (member && mayFailOpen && this.#failsOpen(target)) {
        log.warn({ registry: target.registry, repo: name, digest: object.digest }, 'upstream cannot be asked: serving cached content (ACCESS_CHECK_FAIL_OPEN)');
        return allowed('fail-open');
      }
      const reason = 'unreachable' in result ? ((result.unreachable as NodeJS.ErrnoException).code ?? result.unreachable.message) : `upstream answered ${(result as Answer).status}`;
      return { allowed: false, error: new OciError('UNAVAILABLE', `cannot check access to ${where}: upstream registry ${target.registry} cannot be asked`, { reason }) };
    }
    if (answer.status < 400) {
      await this.#options.records.addMember(object.digest, repositoryKey(target.origin, name));
      return allowed(why);
    }
    if (answer.status === 401) {
      const challenge = answer.challenge ?? this.#challenges.get(target.origin);
      const error = new OciError('UNAUTHORIZED', `${target.registry} requires authentication for ${where}`);
      return { allowed: false, error, ...(challenge ? { challenge } : {}) };
    }
    if (answer.status === 403) return { allowed: false, error: new OciError('DENIED', `${target.registry} denies access to ${where}`) };
    return {
      allowed: false,
      error: object.kind === 'blob' ? new OciError('BLOB_UNKNOWN', `blob unknown to ${where}`, { digest: object.digest }) : new OciError('MANIFEST_UNKNOWN', `manifest unknown to ${where}`, { digest: object.digest }),
    };
  }

  /**
   * One probe for a burst of the same question. An upstream that never gave Layover the digest's bytes
   * must show them (UpstreamProbe.proveHeld): a registry answering yes to any HEAD would otherwise
   * get whatever another registry's credentials cached, by digest. Shown once, it is a holder.
   * `fromSource`: the object is being fetched from this very upstream: its HEAD answers.
   */
  #ask(credential: ProbeCredential, target: ReadTarget, name: RepositoryName, object: CachedObject, log: Log, fromSource = false): Promise<ProbeResult> {
    const prove = !fromSource && !this.#options.records.heldBy(object.digest, target);
    const refutedAt = prove ? this.#refuted.get(`${target.origin}|${object.digest}`) : undefined;
    if (refutedAt !== undefined && this.#now() - refutedAt < REFUTED_TTL_MS) return Promise.resolve(REFUTED);
    const key = `${credentialKey(credential)}|${target.origin}|${name}|${object.kind}|${object.digest}|${prove ? 'prove' : 'head'}`;
    let pending = this.#asking.get(key);
    if (!pending) {
      const { probe } = this.#options;
      pending = prove ? this.#prove(credential, target, name, object, log) : probe.head(target.origin, name, object, credential);
      pending = pending.finally(() => this.#asking.delete(key));
      this.#asking.set(key, pending);
    }
    return pending;
  }

  /**
   * proveHeld, whose answer is recorded. With no bytes here to compare (the digest left the cache, or
   * another replica fetches it from this upstream), the HEAD answered: asked again once if bytes of
   * another upstream arrived meanwhile.
   */
  async #prove(credential: ProbeCredential, target: ReadTarget, name: RepositoryName, object: CachedObject, log: Log, again = true): Promise<ProbeResult> {
    const { probe, records } = this.#options;
    const result = await probe.proveHeld(target.origin, name, object, credential);
    const unshownYes = 'status' in result && result.status < 400 && !('shown' in result);
    if (again && unshownYes && records.present(object.digest) && !records.heldBy(object.digest, target)) return this.#prove(credential, target, name, object, log, false);
    return this.#proven(result, target, name, object, log);
  }

  async #proven(result: ProbeResult, target: ReadTarget, name: RepositoryName, object: CachedObject, log: Log): Promise<ProbeResult> {
    if ('shown' in result) {
      // Not recorded (the index is closing, say): asked again next time, the answer stands.
      await this.#options.records.addHolder(object.digest, target.origin).catch((error: unknown) => log.debug({ err: error, digest: object.digest }, 'recording a holder failed'));
    }
    if ('refuted' in result) {
      this.#refuted.set(`${target.origin}|${object.digest}`, this.#now());
      log.warn({ registry: target.registry, repo: name, digest: object.digest }, 'upstream says it holds a cached digest but could not show its bytes: not served under it');
    }
    return result;
  }

  /** ACCESS_CHECK_FAIL_OPEN names the registry: a pattern without a port names every port of a host, one with a port that port only. */
  #failsOpen(target: ReadTarget): boolean {
    const [host, port = '443'] = target.registry.split(':');
    return this.#failOpen.some((entry) => (entry.port === null || entry.port === port) && entry.names.has(host!));
  }

  #fresh(record: ReachRecord | undefined): boolean {
    return record !== undefined && this.#now() - record.at < this.#options.anonymousTtlMs;
  }
}

type Answer = Extract<ProbeResult, { status: number }>;

/** How long an upstream that could not show a digest's bytes is answered from memory: each try is one guess at a window. */
const REFUTED_TTL_MS = 10 * 60_000;
const REFUTED: ProbeResult = { status: 404, refuted: true };

function withoutChallenge(decision: ReadDecision): ReadDecision {
  return decision.allowed ? decision : { allowed: false, error: decision.error };
}

/** Upstream's answer, or null when it could not say: unreachable, failing, or rate-limiting. */
function answerOf(result: ProbeResult): Answer | null {
  return 'unreachable' in result || result.status >= 500 || result.status === 429 ? null : result;
}

/** A credential's name for memos: a hash, so no secret is kept as a key. */
function credentialKey(credential: ProbeCredential): string {
  if (credential.kind !== 'client') return credential.kind;
  return `client:${createHash('sha256').update(credential.authorization).digest('base64url')}`;
}

