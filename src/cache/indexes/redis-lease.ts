import { checkLeaseName, checkLeaseRequest, grantedLease, holderValue, noteOfHolder, type Lease, type LeaseOptions, type LeaseStore } from '../lease.js';

/** Runs a Lua script on the index's Redis (node-redis `eval`). */
export type EvalScript = (script: string, options: { keys: string[]; arguments: string[] }) => Promise<unknown>;

// SET NX PX takes the lease; the fence counter never expires, so every acquisition gets a larger token.
const ACQUIRE = `if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return redis.call('INCR', KEYS[2]) end return false`;
// An unfenced lease has no counter: nothing of it stays once it is released or expired.
const ACQUIRE_UNFENCED = `if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end return false`;
// Compare-and-renew and compare-and-delete: only the holder that set the value may touch the key.
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
// GET runs through the same script path, so one function reaches Redis.
const HOLDER = `return redis.call('GET', KEYS[1])`;

/** Leases in the same Redis as the index, under `<prefix>::<name>` and the fence `<prefix>-fence::<name>`. */
export class RedisLeaseStore implements LeaseStore {
  private readonly evalScript: EvalScript;
  private readonly prefix: string;

  constructor(evalScript: EvalScript, prefix: string) {
    this.evalScript = evalScript;
    this.prefix = prefix;
  }

  async acquireLease(name: string, ttlMs: number, options: LeaseOptions = {}): Promise<Lease | null> {
    checkLeaseRequest(name, ttlMs, options);
    const key = `${this.prefix}::${name}`;
    const holder = holderValue(options.note);
    const asked = Date.now();
    const token: unknown = options.unfenced
      ? await this.evalScript(ACQUIRE_UNFENCED, { keys: [key], arguments: [holder, String(ttlMs)] })
      : await this.evalScript(ACQUIRE, { keys: [key, `${this.prefix}-fence::${name}`], arguments: [holder, String(ttlMs)] });
    if (token === null) return null;
    if (typeof token !== 'number') throw new Error(`lease ${name}: Redis answered ${typeof token} for the fencing token`);
    return grantedLease(name, token, asked, ttlMs, {
      renew: async () => (await this.evalScript(RENEW, { keys: [key], arguments: [holder, String(ttlMs)] })) === 1,
      release: async () => {
        await this.evalScript(RELEASE, { keys: [key], arguments: [holder] });
      },
    });
  }

  async leaseNote(name: string): Promise<string | null> {
    checkLeaseName(name);
    const holder: unknown = await this.evalScript(HOLDER, { keys: [`${this.prefix}::${name}`], arguments: [] });
    return typeof holder === 'string' ? noteOfHolder(holder) : null;
  }
}
