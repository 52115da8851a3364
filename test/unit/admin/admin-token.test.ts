import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { loadOrCreateAdminToken, readAdminToken } from '../../../src/admin/admin-token.js';

const dir = (): string => mkdtempSync(join(tmpdir(), 'layover-admin-token-'));

it('makes a long random token once, readable by its owner only, and reads the same one back', async () => {
  const file = join(dir(), 'nested', 'admin.token');
  const token = await loadOrCreateAdminToken(file);
  expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
  expect(statSync(file).mode & 0o777).toBe(0o600);
  expect(await loadOrCreateAdminToken(file)).toBe(token);
  expect(await readAdminToken(file)).toBe(token);
  expect(await loadOrCreateAdminToken(join(dir(), 'admin.token'))).not.toBe(token);
});

it("keeps an operator's token as written, without the line end", async () => {
  const file = join(dir(), 'admin.token');
  writeFileSync(file, '  correct-horse-battery-staple\n');
  expect(await loadOrCreateAdminToken(file)).toBe('correct-horse-battery-staple');
  expect(readFileSync(file, 'utf8')).toBe('  correct-horse-battery-staple\n');
});

it('refuses a token short enough to guess, naming the setting', async () => {
  const file = join(dir(), 'admin.token');
  writeFileSync(file, 'secret\n');
  await expect(loadOrCreateAdminToken(file)).rejects.toThrow(/ADMIN_TOKEN_FILE: .* fewer than 16 characters/);
  expect(await readAdminToken(file)).toBeNull();
});

it('reads no token where there is no file (the CLI then works on the files)', async () => {
  expect(await readAdminToken(join(dir(), 'missing'))).toBeNull();
});
