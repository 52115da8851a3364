/**
 * Waits until a server started in a sandbox says it is ready (a line on stdout or stderr): inside a
 * namespace the test process cannot probe the port itself. Rejects with everything the program
 * printed if it exits first or `timeoutMs` passes; on timeout the program is killed.
 */
import type { ChildProcess } from 'node:child_process';

export function waitForOutput(child: ChildProcess, label: string, ready: (output: string) => boolean, timeoutMs: number): Promise<string> {
  let output = '';
  return new Promise((resolve, reject) => {
    const done = (error: Error | null): void => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolve(output);
    };
    const onData = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      if (ready(output)) done(null);
    };
    const onExit = (code: number | null, signal: string | null): void => done(new Error(`${label} exited (${code ?? signal}):\n${output}`));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      done(new Error(`${label} not ready within ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
  });
}
