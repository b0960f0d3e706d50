/**
 * The dev stack's demo: its data seeded (once) and its applicants
 * registered before the replicas start; then its first jobs enqueued and a
 * summary of what ran logged, in the background, until the stack stops.
 */
import type { Config, Logger } from '@lana-jobs/core';
import { createProducer } from '@lana-jobs/producer';
import { builtinJobTypes } from '../jobs/index.js';
import { registerApplicants } from './demo-applicants.js';
import { seedDemoData } from './demo-data.js';
import { enqueueDemoJobs, type DevProducer } from './demo-jobs.js';
import { logDemoSummary } from './demo-summary.js';
import type { EmbeddedServices } from './embedded-services.js';

export class DevDemo {
  #running: Promise<void> | undefined;

  private constructor(
    private readonly producer: DevProducer,
    private readonly config: Config,
    private readonly services: EmbeddedServices,
    private readonly logger: Logger,
    private readonly since: Date,
  ) {}

  /** Seeds the demo data unless seeded, and registers the applicants. */
  static async prepare(
    config: Config,
    services: EmbeddedServices,
    logger: Logger,
  ): Promise<DevDemo> {
    const since = new Date();
    const producer = createProducer({
      jobTypes: builtinJobTypes,
      config,
      logger,
    });
    const demo = new DevDemo(producer, config, services, logger, since);
    try {
      await demo.#seed();
    } catch (error) {
      await producer.close();
      throw error;
    }
    return demo;
  }

  async #seed(): Promise<void> {
    const { databaseSchema: schema, bankTimezone } = this.config;
    const seed = await this.producer.transaction((tx) =>
      seedDemoData(tx, schema, bankTimezone),
    );
    const { seeded, ...counts } = seed;
    this.logger.info(
      { demo_data: counts },
      seeded
        ? `demo data seeded: ${counts.customers} customers, ${counts.facilities} credit facilities, ${counts.approvalProcesses} approval processes, ${counts.payments} payments due`
        : `demo data already seeded (${counts.customers} demo customers): seeding nothing`,
    );
    const emulator = this.services.sumsub;
    if (!emulator) return;
    await this.producer.transaction((tx) =>
      registerApplicants(tx, schema, emulator, this.logger),
    );
  }

  /** Enqueues the first jobs, then logs the summary in the background. */
  async start(signal: AbortSignal): Promise<void> {
    await enqueueDemoJobs(this.producer, this.config, this.logger);
    const sink = this.services.smtp;
    this.#running = logDemoSummary({
      query: (fn) => this.producer.transaction(fn),
      schema: this.config.databaseSchema,
      since: this.since,
      smtpMessages: sink ? () => sink.messages.length : undefined,
      logger: this.logger,
      signal,
    }).catch((error: unknown) => {
      if (!signal.aborted)
        this.logger.warn({ err: error }, 'demo summary failed');
    });
  }

  /** Waits for the summary to end (abort its signal first) and closes. */
  async close(): Promise<void> {
    await this.#running;
    await this.producer.close();
  }
}
