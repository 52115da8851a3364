/**
 * Issue 10, "what a new user hits": `npm start` after a `git pull` ran the old dist/. The start script
 * now compiles when a source is newer than the last successful build, and refuses to start when the
 * build fails. A small stand-in for src/ keeps each build short; the script and compiler are the real ones.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { copyProject } from './project-copy.js';

const mainSource = (word: string): string => `process.stdout.write(\`${word} \${process.argv.slice(2).join(' ')}\\n\`);\n`;
let project: ReturnType<typeof copyProject>;

beforeAll(() => {
  project = copyProject({ 'cli/main.ts': mainSource('first'), 'other.ts': 'export const other = 1;\n' });
});
afterAll(() => project.remove());

const npmStart = (...args: string[]) => {
  const result = spawnSync('npm', ['start', '--silent', '--', ...args], { cwd: project.dir, env: { PATH: process.env.PATH, HOME: process.env.HOME }, encoding: 'utf8', timeout: 120_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, built: result.stderr.includes('building dist/') };
};

it('builds on the first start, not again while nothing changed, and again when a source changed', () => {
  const first = npmStart('--flag');
  expect(first.stderr).toContain('building dist/');
  expect(first.stdout, first.stderr).toBe('first serve --flag\n');

  const again = npmStart();
  expect(again.built, again.stderr).toBe(false);
  expect(again.stdout).toBe('first serve\n');

  // What `git pull` does: the file is rewritten, with the time of the pull.
  writeFileSync(join(project.dir, 'src/cli/main.ts'), mainSource('pulled'));
  const pulled = npmStart();
  expect(pulled.built, pulled.stderr).toBe(true);
  expect(pulled.stdout).toBe('pulled serve\n');

  // Any source counts, not only the entry point; and a changed compiler setting too.
  const later = new Date(Date.now() + 5_000);
  utimesSync(join(project.dir, 'src/other.ts'), later, later);
  expect(npmStart().built).toBe(true);
  utimesSync(join(project.dir, 'tsconfig.build.json'), new Date(Date.now() + 10_000), new Date(Date.now() + 10_000));
  expect(npmStart().built).toBe(true);
}, 180_000);

it('refuses to start the old build when the new one fails', () => {
  expect(npmStart().stdout).toMatch(/serve\n$/);
  writeFileSync(join(project.dir, 'src/cli/main.ts'), `const broken: number = 'text';\n${mainSource('broken')}`);
  const failed = npmStart();
  expect(failed.status).not.toBe(0);
  expect(failed.stdout).toBe('');
  expect(failed.stderr).toContain('the build failed');
  // Still refused on the next start: a failed build leaves nothing that looks current.
  expect(npmStart().stdout).toBe('');
  expect(readFileSync(join(project.dir, 'src/cli/main.ts'), 'utf8')).toContain('broken');
}, 180_000);
