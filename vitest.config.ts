import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    // Integration tests start real servers (dnsmasq, TLS listeners): give them room,
    // and run files in separate processes so one crash cannot take the others down.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
