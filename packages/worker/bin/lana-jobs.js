#!/usr/bin/env node
// The installed entry point: runs the built CLI (`pnpm build` first).
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv);
