/**
 * Bull Board at `/board`, in two instances over the same queues, since
 * `readOnlyMode` is set per queue adapter: a read-only one for viewers and
 * one with the action buttons for operators, whose writes go through
 * {@link bullBoardGuard} first. BullMQ jobs carry `{}` (payloads live in
 * Postgres), so Bull Board shows no customer data.
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { Queue } from 'bullmq';
import type { RequestHandler } from 'express';
import { principalOf } from '../auth/authenticate.js';

export const BOARD_BASE_PATH = '/board';

export interface BullBoardOptions {
  /** Every queue to show, by name (the job types' and the schedule ticks'). */
  queues: ReadonlyMap<string, Queue>;
  /** Queues an operator may pause but never retry in (the schedule ticks). */
  noRetries?: ReadonlySet<string>;
  /** Runs before the operators' instance; refuses or handles its writes. */
  guard: RequestHandler;
  /** Runs before both instances; adds the reason prompt to the page. */
  page: RequestHandler;
}

/** The handler mounted at {@link BOARD_BASE_PATH}, choosing by role. */
export function bullBoards(options: BullBoardOptions): RequestHandler {
  const viewer = instance(options, true);
  const operator = instance(options, false);
  return (req, res, next) => {
    options.page(req, res, (error?: unknown) => {
      if (error) return next(error);
      if (principalOf(res).role !== 'operator') return viewer(req, res, next);
      const guarded = options.guard(req, res, (guardError?: unknown) =>
        guardError ? next(guardError) : operator(req, res, next),
      );
      void Promise.resolve(guarded).catch(next);
    });
  };
}

function instance(
  options: BullBoardOptions,
  readOnly: boolean,
): RequestHandler {
  const server = new ExpressAdapter().setBasePath(BOARD_BASE_PATH);
  const adapters = [...options.queues].map(
    ([name, queue]) =>
      new BullMQAdapter(queue, {
        readOnlyMode: readOnly,
        allowRetries: !readOnly && !options.noRetries?.has(name),
        description: readOnly ? 'read-only (viewer)' : '',
      }),
  );
  createBullBoard({
    queues: adapters,
    serverAdapter: server,
    options: {
      uiConfig: {
        boardTitle: readOnly ? 'lana-jobs (read-only)' : 'lana-jobs',
        miscLinks: [{ text: 'Job history', url: '/' }],
      },
    },
  });
  return server.getRouter() as RequestHandler;
}
