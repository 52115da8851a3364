import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * A directory with the project's scripts and package files, sharing node_modules and the Node.js
 * toolchain, so `npm start` there touches nobody else's dist/. `sources` given: a small stand-in
 * for src/ (path -> text), which the start script compiles like the real one. Otherwise the real
 * src/ and the dist/ built by the test run's global setup, stamped as built from those sources.
 */
export function copyProject(sources?: Record<string, string>): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'layover-project-'));
  const copy = (entry: string): void => cpSync(join(ROOT, entry), join(dir, entry), { recursive: true, preserveTimestamps: true });
  for (const entry of ['scripts', 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json']) copy(entry);
  for (const shared of ['node_modules', '.toolchain']) symlinkSync(join(ROOT, shared), join(dir, shared));
  if (sources) {
    for (const [path, text] of Object.entries(sources)) {
      mkdirSync(dirname(join(dir, 'src', path)), { recursive: true });
      writeFileSync(join(dir, 'src', path), text);
    }
  } else {
    copy('src');
    copy('dist');
    writeFileSync(join(dir, BUILD_STAMP), '');
  }
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The file scripts/start compares the sources' times with. */
export const BUILD_STAMP = 'dist/.built-from-sources';

export interface Started {
  child: ChildProcess;
  exited: Promise<number | null>;
  output(): string;
  /** Resolves with the first log line carrying this message, parsed; rejects if the process ends first. */
  logged(msg: string): Promise<Record<string, unknown>>;
}

/** A command in `dir` with its output collected; killed (SIGKILL, whole group) when the test ends. */
export function startIn(dir: string, command: string, args: string[], onEnd: (cleanup: () => void) => void): Started {
  // Its own process group, so a test can signal it the way a terminal's Ctrl-C does.
  const child = spawn(command, args, { cwd: dir, env: { PATH: process.env.PATH, HOME: process.env.HOME }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))));
  onEnd(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // the group is gone already
    }
  });
  const logged = async (msg: string): Promise<Record<string, unknown>> => {
    const deadline = Date.now() + 120_000;
    for (;;) {
      const line = output.split('\n').find((l) => l.includes(`"msg":"${msg}"`));
      if (line) return JSON.parse(line) as Record<string, unknown>;
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no "${msg}" line:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  return { child, exited, output: () => output, logged };
}
