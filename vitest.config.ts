import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The per-runtime smoke suites run under their own runners (test/runtimes.test.ts spawns them).
    exclude: ['test/runtime/**', 'node_modules/**'],
    testTimeout: 30_000,
  },
});
