import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { Command, Option } from 'commander';
import { LanaJobsError, preparePayload, type JobType } from '@lana-jobs/core';
import {
  createProducer,
  type EnqueueOptions,
  type JobRequest,
} from '@lana-jobs/producer';
import { builtinJobTypes } from '../jobs/index.js';
import { cliContext } from './context.js';
import { UsageError } from './usage-error.js';

/** Jobs per `enqueueMany` call when reading a file. */
const FILE_BATCH_SIZE = 1000;
/** Bad lines reported before giving up on a file. */
const BAD_LINES_SHOWN = 5;

interface EnqueueFlags {
  payload?: string;
  file?: string;
  at?: string;
  key?: string;
  actor: string;
}

export function enqueueCommand(): Command {
  const command = new Command('enqueue')
    .description(
      'record a job (or one per line of an NDJSON file) and print its id (or the count)',
    )
    .argument(
      '<type>',
      `the job type (${builtinJobTypes.map((t) => t.name).join(', ')})`,
    )
    .addOption(new Option('--payload <json>', 'the payload, as JSON'))
    .addOption(
      new Option(
        '--file <path>',
        "an NDJSON file, one payload a line; '-' for standard input",
      ),
    )
    .addOption(
      new Option(
        '--at <iso>',
        'not before this time (ISO 8601, e.g. 2026-01-31T09:00:00Z)',
      ),
    )
    .addOption(
      new Option(
        '--key <idempotency-key>',
        'names the job: the same key enqueues it once',
      ),
    )
    .addOption(
      new Option('--actor <who>', 'recorded as who enqueued it').default('cli'),
    )
    .action(async (type: string, flags: EnqueueFlags) => {
      const jobType = builtinJobTypes.find((t) => t.name === type);
      if (!jobType) {
        throw new UsageError(
          `unknown job type '${type}'; known types: ${builtinJobTypes.map((t) => t.name).join(', ')}`,
          command,
        );
      }
      if ((flags.payload === undefined) === (flags.file === undefined)) {
        throw new UsageError(
          'give exactly one of --payload and --file',
          command,
        );
      }
      if (flags.file !== undefined && flags.key !== undefined) {
        throw new UsageError(
          '--key names one job; it cannot go with --file',
          command,
        );
      }
      const options: EnqueueOptions = {
        actor: flags.actor,
        scheduledAt: parseAt(flags.at, command),
      };
      if (flags.key !== undefined) options.idempotencyKey = flags.key;

      if (flags.payload !== undefined) {
        const payload = parseJson(flags.payload, '--payload', command);
        await withProducer(async (producer) => {
          const { id } = await producer.enqueue(
            jobType.name,
            payload as never,
            options,
          );
          process.stdout.write(`${id}\n`);
        });
      } else {
        const payloads = await readPayloads(flags.file!, jobType, command);
        const count = await withProducer((producer) =>
          enqueueInBatches(payloads, (batch) =>
            producer.enqueueMany(
              batch.map(
                (payload) =>
                  ({
                    type: jobType.name,
                    payload,
                    options,
                  }) as JobRequest<JobType>,
              ),
            ),
          ),
        );
        process.stdout.write(`${count}\n`);
      }
    });
  return command;
}

async function withProducer<R>(
  fn: (producer: ReturnType<typeof createProducer<JobType>>) => Promise<R>,
): Promise<R> {
  const { config, logger } = cliContext('cli');
  const producer = createProducer<JobType>({
    jobTypes: builtinJobTypes,
    config,
    logger,
  });
  try {
    return await fn(producer);
  } finally {
    await producer.close();
  }
}

function parseAt(
  value: string | undefined,
  command: Command,
): Date | undefined {
  if (value === undefined) return undefined;
  const date = new Date(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(date.getTime())) {
    throw new UsageError(
      `--at must be an ISO 8601 time such as 2026-01-31T09:00:00Z, got '${value}'`,
      command,
    );
  }
  return date;
}

function parseJson(text: string, what: string, command: Command): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(
      `${what} is not valid JSON: ${(error as Error).message}`,
      command,
    );
  }
}

/**
 * Reads and validates every line before anything is enqueued: a file with
 * a bad line enqueues nothing, and the error names the lines.
 */
async function readPayloads(
  path: string,
  type: JobType,
  command: Command,
): Promise<unknown[]> {
  const input = path === '-' ? process.stdin : createReadStream(path);
  const lines = createInterface({ input, crlfDelay: Infinity });
  const payloads: unknown[] = [];
  const bad: string[] = [];
  let lineNumber = 0;
  try {
    for await (const line of lines) {
      lineNumber++;
      if (line.trim() === '') continue;
      try {
        payloads.push(preparePayload(type, JSON.parse(line)));
      } catch (error) {
        if (bad.length < BAD_LINES_SHOWN)
          bad.push(`line ${lineNumber}: ${(error as Error).message}`);
        else if (bad.length === BAD_LINES_SHOWN) bad.push('…');
      }
    }
  } catch (error) {
    throw new UsageError(
      `cannot read --file '${path}': ${(error as Error).message}`,
      command,
    );
  }
  if (bad.length > 0) {
    throw new UsageError(
      `nothing enqueued; bad lines in ${path === '-' ? 'standard input' : path}: ${bad.join('; ')}`,
      command,
    );
  }
  if (payloads.length === 0)
    throw new UsageError(
      `no payloads in ${path === '-' ? 'standard input' : path}`,
      command,
    );
  return payloads;
}

async function enqueueInBatches(
  payloads: unknown[],
  enqueue: (batch: unknown[]) => Promise<unknown[]>,
): Promise<number> {
  const progress = new ProgressBar(payloads.length);
  let done = 0;
  try {
    for (let i = 0; i < payloads.length; i += FILE_BATCH_SIZE) {
      const batch = payloads.slice(i, i + FILE_BATCH_SIZE);
      await enqueue(batch);
      done += batch.length;
      progress.update(done);
    }
  } catch (error) {
    throw new LanaJobsError(
      `enqueued ${done} of ${payloads.length}, then: ${(error as Error).message}`,
      { cause: error },
    );
  } finally {
    progress.finish();
  }
  return done;
}

/** A progress bar on standard error, drawn only on a terminal. */
class ProgressBar {
  readonly #enabled = Boolean(process.stderr.isTTY);
  constructor(private readonly total: number) {}

  update(done: number): void {
    if (!this.#enabled) return;
    const width = 30;
    const filled = Math.round((done / this.total) * width);
    process.stderr.write(
      `\r[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${this.total}`,
    );
  }

  finish(): void {
    if (this.#enabled) process.stderr.write('\n');
  }
}
