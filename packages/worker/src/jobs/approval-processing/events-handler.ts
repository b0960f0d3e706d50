import { LanaJobsError, type OutboxHandler } from '@lana-jobs/core';
import type { EnqueueOptions, EnqueueResult } from '@lana-jobs/producer';
import { z } from 'zod';
import { DECISION_TRIGGERS } from './events.js';
import { approvalProcessingType } from './job.js';

/** The name to give the outbox consumer that runs this handler. */
export const APPROVAL_CONSUMER_NAME = 'approval-processing';
/** The actor recorded on the jobs the handler enqueues. */
export const APPROVAL_CONSUMER_ACTOR = 'outbox:approval-processing';

/** What the handler needs of a producer (any producer of the type). */
export interface ApprovalCommandProducer {
  enqueue(
    type: typeof approvalProcessingType.name,
    payload: { processId: string },
    options: EnqueueOptions,
  ): Promise<EnqueueResult>;
}

const triggerPayload = z.object({ processId: z.guid() });

/** The idempotency key of the job an event enqueues: one job per event. */
export function approvalIdempotencyKey(
  processId: string,
  sequence: number,
): string {
  return `approval:${processId}:${sequence}`;
}

/**
 * The outbox-to-command handler of the governance events: for
 * `ApprovalProcessStarted` and `ApprovalVoteCast` it enqueues
 * `approval-processing` in the consumer's own transaction, keyed by the
 * event (so the job exists exactly when the cursor has passed it) and with
 * the process as entity key (so two decisions of one process never
 * interleave). Other events are passed over. An event without a valid
 * `processId` throws, which holds the consumer at it: order is the
 * contract, and dropping a decision silently would be worse.
 */
export function approvalEventsHandler(
  producer: ApprovalCommandProducer,
): OutboxHandler {
  return async (event, tx) => {
    if (!DECISION_TRIGGERS.includes(event.name)) return;
    const parsed = triggerPayload.safeParse(event.payload);
    if (!parsed.success) {
      throw new LanaJobsError(
        `outbox event ${event.sequence} (${event.name}) has no valid payload.processId; fix or remove the event to let the consumer '${APPROVAL_CONSUMER_NAME}' go on`,
      );
    }
    const { processId } = parsed.data;
    await producer.enqueue(
      approvalProcessingType.name,
      { processId },
      {
        tx,
        idempotencyKey: approvalIdempotencyKey(processId, event.sequence),
        entityKey: processId,
        actor: APPROVAL_CONSUMER_ACTOR,
      },
    );
  };
}
