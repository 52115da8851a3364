import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The files of a `skopeo copy ... dir:` output, name -> bytes as hex of sha256-free raw content length + content. */
export function dirContents(dir: string): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const name of readdirSync(dir).sort()) out[name] = readFileSync(join(dir, name));
  return out;
}
