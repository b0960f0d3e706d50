#!/usr/bin/env node
// The installed entry point: runs the built CLI (`pnpm build` first).
//
// NOTE: the telemetry module goes first, and the CLI is imported only
// after it: under ESM the pg and ioredis instrumentations patch only what
// loads after their hook is registered, and static imports would all load
// before any of this file runs. This is the `node --import` of a bin
// without a command line of its own.
await import('@lana-jobs/core/instrumentation');
const { main } = await import('../dist/cli/main.js');

process.exitCode = await main(process.argv);
