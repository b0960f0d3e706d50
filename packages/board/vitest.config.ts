import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { conditions: ['@lana-jobs/source'] },
  ssr: { resolve: { conditions: ['@lana-jobs/source'] } },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    fileParallelism: false,
  },
});
