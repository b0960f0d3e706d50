/**
 * `pnpm bench`: the side-by-side comparison (run.ts, which takes the
 * flags), then how long 100,000 facilities take to accrue a day, then the
 * relay's latency. Exits with the comparison's code (1 when a bar is
 * missed).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const node = [
  process.execPath,
  '--conditions=@lana-jobs/source',
  '--import',
  'tsx',
];
const here = import.meta.dirname;

function run(script: string, args: string[] = []): number {
  const [bin, ...flags] = node;
  const result = spawnSync(bin!, [...flags, join(here, script), ...args], {
    stdio: 'inherit',
  });
  return result.status ?? 1;
}

const comparison = run('run.ts', process.argv.slice(2));
console.log('\ninterest accrual, 100,000 facilities, one day:');
run('accrual.ts');
console.log('\nrelay latency (commit to BullMQ job):');
run('relay-latency.ts');
process.exit(comparison);
