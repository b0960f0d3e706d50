/**
 * Span and metric helpers shared by the producer and the worker. They use
 * `@opentelemetry/api` only: without an SDK registered (see
 * `@lana-jobs/core/instrumentation`) every call is a no-op, so telemetry
 * off costs next to nothing.
 *
 * Names follow the OpenTelemetry messaging conventions, BullMQ being the
 * messaging system and a job type's queue the destination. Attributes
 * never carry a payload: a job's data stays in Postgres.
 */
import {
  metrics,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Attributes,
  type Context,
  type Counter,
  type Link,
  type MeterProvider,
  type Span,
} from '@opentelemetry/api';

/** Attribute keys; the `lana_jobs.*` ones are the project's own. */
export const TELEMETRY_ATTRIBUTES = {
  messagingSystem: 'messaging.system',
  destinationName: 'messaging.destination.name',
  operationType: 'messaging.operation.type',
  operationName: 'messaging.operation.name',
  messageId: 'messaging.message.id',
  batchMessageCount: 'messaging.batch.message_count',
  errorType: 'error.type',
  jobType: 'lana_jobs.job.type',
  jobAttempt: 'lana_jobs.job.attempt',
  jobOutcome: 'lana_jobs.job.outcome',
} as const;

/** `messaging.system` of every span and metric. */
export const MESSAGING_SYSTEM = 'bullmq';

const A = TELEMETRY_ATTRIBUTES;

/** What one job type's part of an enqueue is about. */
export interface SendSpanOptions {
  /** The job types of the enqueued jobs (one queue each). */
  jobTypes: readonly string[];
  /** How many jobs. */
  count: number;
}

/**
 * Starts the PRODUCER span of an enqueue, `send <job type>` (just `send`
 * when the jobs go to several queues). Its context is what the job rows
 * record, so that the attempts join this trace.
 */
export function startSendSpan(
  tracerName: string,
  options: SendSpanOptions,
): Span {
  const types = [...new Set(options.jobTypes)];
  const single = types.length === 1 ? types[0] : undefined;
  const attributes: Attributes = {
    [A.messagingSystem]: MESSAGING_SYSTEM,
    [A.operationType]: 'send',
    [A.operationName]: 'send',
  };
  if (single !== undefined) {
    attributes[A.destinationName] = single;
    attributes[A.jobType] = single;
  }
  if (options.count > 1) attributes[A.batchMessageCount] = options.count;
  return trace
    .getTracer(tracerName)
    .startSpan(single === undefined ? 'send' : `send ${single}`, {
      kind: SpanKind.PRODUCER,
      attributes,
    });
}

/** What an attempt's CONSUMER span describes. */
export interface ProcessSpanOptions {
  jobId: string;
  jobType: string;
  /** The BullMQ queue the job came from. */
  queue: string;
  attempt: number;
}

/**
 * Starts the CONSUMER span of one attempt, `process <job type>`, as a child
 * of `parent` (the context the job row recorded at enqueue).
 */
export function startProcessSpan(
  tracerName: string,
  options: ProcessSpanOptions,
  parent: Context,
): Span {
  return trace.getTracer(tracerName).startSpan(
    `process ${options.jobType}`,
    {
      kind: SpanKind.CONSUMER,
      attributes: {
        [A.messagingSystem]: MESSAGING_SYSTEM,
        [A.destinationName]: options.queue,
        [A.operationType]: 'process',
        [A.operationName]: 'process',
        [A.messageId]: options.jobId,
        [A.jobType]: options.jobType,
        [A.jobAttempt]: options.attempt,
      },
    },
    parent,
  );
}

/**
 * Starts `complete batch`, the span of the statements that several
 * attempts share when their completions commit together (BEGIN, the one
 * completing statement, COMMIT): a root of its own, linked to the span of
 * each attempt (`members`, the contexts the attempts completed in). As the
 * child of one attempt it would put the others' work in that one's trace.
 *
 * Undefined when no member is sampled: the batch then goes untraced, like
 * its attempts.
 */
export function startCompleteBatchSpan(
  tracerName: string,
  members: readonly Context[],
): Span | undefined {
  const links: Link[] = [];
  for (const member of members) {
    const linked = trace.getSpanContext(member);
    if (linked && trace.isSpanContextValid(linked))
      links.push({ context: linked });
  }
  const sampled = links.some(
    (link) => (link.context.traceFlags & TraceFlags.SAMPLED) !== 0,
  );
  if (!sampled) return undefined;
  return trace.getTracer(tracerName).startSpan(
    'complete batch',
    {
      kind: SpanKind.INTERNAL,
      root: true,
      links,
      attributes: {
        [A.messagingSystem]: MESSAGING_SYSTEM,
        [A.operationType]: 'settle',
        [A.operationName]: 'complete',
        [A.batchMessageCount]: members.length,
      },
    },
    ROOT_CONTEXT,
  );
}

/** What a span records of an error: never its other fields, which may hold data. */
export interface SpanError {
  name: string;
  message: string;
  stack?: string;
}

/**
 * Marks a span failed: an exception event with the error's name, message
 * and stack, ERROR status and `error.type`.
 */
export function recordSpanError(span: Span, error: SpanError): void {
  if (!span.isRecording()) return;
  span.recordException({
    name: error.name,
    message: error.message,
    stack: error.stack,
  });
  span.setAttribute(A.errorType, error.name);
  span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
}

/** Attributes of `messaging.client.sent.messages`. */
export interface SentMessages {
  jobType: string;
  count: number;
  /** The error's name when the enqueue failed. */
  errorType?: string;
}

/**
 * Counts enqueued jobs on `messaging.client.sent.messages` of the meter
 * `meterName`, through the host's global MeterProvider (a no-op unless it
 * registered one). The counter is made again when the provider changes:
 * the API hands out no proxy meters, and a host may register its provider
 * after the producer was made.
 */
export class SentMessagesCounter {
  #provider: MeterProvider | undefined;
  #counter: Counter | undefined;

  constructor(private readonly meterName: string) {}

  add(sent: SentMessages): void {
    const attributes: Attributes = {
      [A.messagingSystem]: MESSAGING_SYSTEM,
      [A.destinationName]: sent.jobType,
      [A.operationName]: 'send',
      [A.jobType]: sent.jobType,
    };
    if (sent.errorType !== undefined) attributes[A.errorType] = sent.errorType;
    this.#current().add(sent.count, attributes);
  }

  #current(): Counter {
    const provider = metrics.getMeterProvider();
    if (provider !== this.#provider || !this.#counter) {
      this.#provider = provider;
      this.#counter = provider
        .getMeter(this.meterName)
        .createCounter('messaging.client.sent.messages', {
          description: 'Jobs enqueued (recorded in Postgres) by the producer',
          unit: '{message}',
        });
    }
    return this.#counter;
  }
}
