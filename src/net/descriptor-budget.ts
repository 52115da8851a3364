import { readFileSync } from 'node:fs';

/**
 * The process's limit on open files (the soft limit, which Node raises to the hard one at start),
 * from Linux's /proc/self/limits; null where that file is missing or says "unlimited".
 */
export function openFileLimit(limitsFile = '/proc/self/limits'): number | null {
  let text: string;
  try {
    text = readFileSync(limitsFile, 'utf8');
  } catch {
    return null;
  }
  const soft = /^Max open files\s+(\d+)\s/m.exec(text)?.[1];
  return soft === undefined ? null : Number(soft);
}

/**
 * The per-listener cap to apply: MAX_CONNECTIONS, lowered so that `listeners` listeners at their cap
 * hold at most half of the open-file limit. The other half stays for what those connections cause
 * (an upstream connection per proxied request, cache files, DNS over TCP), so a flood of every
 * listener at once still cannot take the descriptors that /healthz and a new client need.
 * 0 (no cap) is the operator's explicit choice and stays.
 */
export function listenerCapWithin(configured: number, openFiles: number | null, listeners: number): number {
  if (configured === 0 || openFiles === null || listeners < 1) return configured;
  return Math.max(1, Math.min(configured, Math.floor(openFiles / 2 / listeners)));
}
