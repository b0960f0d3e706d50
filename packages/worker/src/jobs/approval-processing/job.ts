import {
  defineJobType,
  PermanentJobError,
  type Queryable,
} from '@lana-jobs/core';
import { z } from 'zod';
import { defineJob } from '../../job-module.js';
import { concludeIfDecided } from './conclusion.js';

/**
 * `approval-processing`: executes a governance decision. Enqueued through
 * the outbox (see `approvalEventsHandler`) when a process starts or a
 * vote is cast, one at a time per process (its entity key).
 */
export const approvalProcessingType = defineJobType({
  name: 'approval-processing',
  schema: z.object({
    /** The approval process to decide. */
    processId: z.guid(),
  }),
  // Deciding one process is a few statements in one transaction; 15 s
  // means a lock wait (another vote of the same process) or a slow Postgres.
  softTimeLimitMs: 15_000,
  hardTimeLimitMs: 60_000,
  // It approves disbursals: an operator's retry needs a second operator.
  movesMoney: true,
});

/**
 * In one fenced transaction (the completion): locks the process and, if
 * its policy has decided, concludes it and approves or cancels its
 * disbursal with their events. The result's `outcome` is `approved`,
 * `denied`, `undecided` (nothing changed) or `already-concluded` (a rerun:
 * nothing changed, nothing published). A process that does not exist fails
 * the job at once.
 */
export const approvalProcessing = defineJob(
  approvalProcessingType,
  async (payload, ctx) => {
    const conclusion = await ctx.complete(async (tx) => {
      const found = await concludeIfDecided(
        tx,
        await currentSchema(tx),
        payload.processId,
      );
      if (found.outcome === 'missing') {
        throw new PermanentJobError(
          `approval process ${payload.processId} (payload.processId) does not exist; nothing to decide`,
        );
      }
      return found;
    });
    ctx.logger.debug(
      { process_id: payload.processId, outcome: conclusion?.outcome },
      'approval process looked at',
    );
    return conclusion;
  },
);

/** The job schema: first on the fenced transaction's search_path. */
async function currentSchema(tx: Queryable): Promise<string> {
  const { rows } = await tx.query<{ schema: string }>(
    'SELECT current_schema() AS schema',
  );
  return rows[0]!.schema;
}
