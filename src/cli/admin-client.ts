import type { LayoverConfig } from '../config/layover-config.js';
import { readAdminToken } from '../admin/admin-token.js';

/** Where the running Layover's admin API is, and the token to call it with. */
export interface AdminEndpoint {
  readonly baseUrl: string;
  readonly token: string;
}

/** An address to dial for a listener bound to every address: the same host's loopback. */
function dialable(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * The admin API of a Layover on this host, from the same configuration `layover serve` reads:
 * ADMIN_LISTEN, or else the HTTP listener; the token from ADMIN_TOKEN_FILE. Null when there is no
 * such listener or no token file (then no Layover has run with this configuration).
 */
export async function adminEndpoint(config: LayoverConfig): Promise<AdminEndpoint | null> {
  const listen = config.admin.listen ?? config.listen.http;
  if (!listen) return null;
  const token = await readAdminToken(config.admin.tokenFile);
  return token === null ? null : { baseUrl: `http://${dialable(listen.host)}:${listen.port}`, token };
}

/**
 * Calls the admin API; null when nothing listens there (Layover is not running, so the CLI works on
 * the files instead). Any other failure is thrown.
 */
export async function callAdmin(endpoint: AdminEndpoint, method: string, path: string, body?: unknown): Promise<Response | null> {
  try {
    return await fetch(`${endpoint.baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${endpoint.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch (error) {
    const code = (error as { cause?: { code?: string } }).cause?.code;
    if (code === 'ECONNREFUSED') return null;
    throw error;
  }
}
