import type { Lease } from './lease.js';

/**
 * True while `lease` leaves at least `needMs` for the next step of a fleet job, renewing it once less than
 * twice that is left; false once it is lost (a renewal answered false or failed): the job stops there.
 */
export async function leaseStillHeld(lease: Lease, needMs: number): Promise<boolean> {
  if (lease.expiresAt - Date.now() >= 2 * needMs) return true;
  const renewed = await lease.renew().catch(() => false);
  return renewed && lease.expiresAt - Date.now() >= needMs;
}
