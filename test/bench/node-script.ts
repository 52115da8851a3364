/**
 * A client written in TypeScript, run by Node inside the sandbox: its names resolve through the
 * sandbox's resolv.conf (Layover's DNS on 127.0.0.1) and its sockets reach only the sandbox's
 * loopback. Node strips the types itself, so the script imports only `node:` modules and packages
 * (no relative `.js` specifiers). It reads one JSON job on stdin and writes JSON lines on stdout;
 * lines that are not JSON go to `output` for assertion messages.
 *
 *   const { lines } = await runNodeScript<Result>(bench.sandbox, script, { probes });
 */
import type { Sandbox } from './sandbox.js';

export interface NodeScriptResult<T> {
  /** Every stdout line that parsed as JSON, in order. */
  lines: T[];
  code: number | null;
  /** stderr plus any stdout line that was not JSON. */
  output: string;
}

export async function runNodeScript<T>(sandbox: Sandbox, script: string, job: unknown, options: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<NodeScriptResult<T>> {
  const result = await sandbox.exec(process.execPath, ['--disable-warning=ExperimentalWarning', script], {
    input: JSON.stringify(job),
    timeoutMs: options.timeoutMs ?? 120_000,
    ...(options.env ? { env: options.env } : {}),
  });
  const lines: T[] = [];
  let output = result.stderr;
  for (const line of result.stdout.split('\n')) {
    if (!line) continue;
    try {
      lines.push(JSON.parse(line) as T);
    } catch {
      output += `${line}\n`;
    }
  }
  if (result.code !== 0) throw new Error(`${script} exited with ${result.code} in ${sandbox.name}:\n${output}`);
  return { lines, code: result.code, output };
}
