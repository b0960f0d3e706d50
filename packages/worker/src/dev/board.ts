/**
 * The dev stack's board: `startBoard` in this process on `PORT` (3000),
 * with the built-in job types. Unless `BOARD_USERS` is set, three demo users
 * (a viewer and two operators, so that a money-moving retry can be
 * approved) with known passwords, printed at start: worthless elsewhere.
 */
import {
  loadConfig,
  type BoardRole,
  type Config,
  type Logger,
} from '@lana-jobs/core';
import { hashPassword, startBoard, type RunningBoard } from '@lana-jobs/board';
import { builtinJobTypes } from '../jobs/index.js';

export interface DemoUser {
  name: string;
  role: BoardRole;
  password: string;
}

/** Dev-only users and passwords of the demo board. */
export const DEMO_BOARD_USERS: readonly DemoUser[] = [
  { name: 'viewer', role: 'viewer', password: 'viewer-demo' },
  { name: 'operator', role: 'operator', password: 'operator-demo' },
  { name: 'approver', role: 'operator', password: 'approver-demo' },
];

/**
 * Starts the board; `env` is the stack's (DATABASE_URL, REDIS_URL, …).
 * Demo users are hashed here with a cheap scrypt cost: they guard nothing.
 */
export async function startDevBoard(
  env: NodeJS.ProcessEnv,
  port: number,
  logger: Logger,
): Promise<RunningBoard> {
  const demo = !env.BOARD_USERS?.trim();
  let config: Config = loadConfig(env);
  if (demo) {
    const entries = await Promise.all(
      DEMO_BOARD_USERS.map(
        async (u) =>
          `${u.name}:${u.role}:${await hashPassword(u.password, { N: 2 ** 12 })}`,
      ),
    );
    config = loadConfig({ ...env, BOARD_USERS: entries.join(',') });
  }
  const board = await startBoard({
    config,
    logger,
    jobTypes: builtinJobTypes,
    port,
    // Loopback only: the demo operators' passwords are printed and public.
    host: demo ? '127.0.0.1' : undefined,
  });
  const address = `http://localhost:${board.port}`;
  if (demo) {
    const users = DEMO_BOARD_USERS.map(
      (u) => `${u.name} / ${u.password} (${u.role})`,
    ).join(', ');
    logger.info(
      { url: address, users: DEMO_BOARD_USERS.map((u) => u.name) },
      `board ready at ${address} (Bull Board at ${address}/board); demo users, dev only: ${users}; set BOARD_USERS to use your own`,
    );
  } else {
    logger.info(
      { url: address },
      `board ready at ${address} (Bull Board at ${address}/board), users from BOARD_USERS`,
    );
  }
  return board;
}
