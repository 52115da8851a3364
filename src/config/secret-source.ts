import { readFileSync } from 'node:fs';

/**
 * A secret a config-file entry gives inline (`field`), as a file (`fieldFile`, one trailing newline
 * dropped) or as an environment variable (`fieldEnv`). Returns it, or an error message that names
 * the entry and never the secret.
 */
export function readSecretSource(entry: Record<string, unknown>, field: string, where: string, env: NodeJS.ProcessEnv): string | { error: string } {
  const [fileKey, envKey] = [`${field}File`, `${field}Env`];
  const given = [field, fileKey, envKey].filter((k) => entry[k] !== undefined);
  if (given.length !== 1) return { error: `${where} needs exactly one of ${field}, ${fileKey}, ${envKey}` };
  const [inline, file, variable] = [entry[field], entry[fileKey], entry[envKey]];
  let value: string | undefined;
  if (typeof inline === 'string') value = inline;
  else if (typeof file === 'string') {
    try {
      value = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (error) {
      return { error: `${where}: cannot read ${fileKey} ${file} (${(error as NodeJS.ErrnoException).code})` };
    }
  } else if (typeof variable === 'string') {
    value = env[variable];
    if (value === undefined) return { error: `${where}: environment variable ${variable} is not set` };
  }
  if (!value) return { error: `${where}: the ${field} is empty or not a string` };
  return value;
}
