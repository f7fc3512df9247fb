// The card's tests: JSX through esbuild (React in scope), Node environment (the testing utilities render without a DOM)
import { defineConfig } from 'vitest/config';

export default defineConfig({
  esbuild: { jsx: 'transform' },
  test: { include: ['__tests__/**/*.test.jsx'], environment: 'node' },
});
