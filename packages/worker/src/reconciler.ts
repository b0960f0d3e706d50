import {
  generationKey,
  type Logger,
  type Pool,
  type Redis,
} from '@lana-jobs/core';
import type { JobTransport, Relay } from '@lana-jobs/producer';
import { reconcilerSql } from './reconciler-sql.js';

/** How often the leader checks the Redis marker. */
export const RECONCILE_INTERVAL_MS_DEFAULT = 1_000;
/** How often the leader compares every non-final job with Redis. */
export const FULL_PASS_INTERVAL_MS_DEFAULT = 60_000;
/** Jobs per page of the full pass (one Redis pipeline each). */
const FULL_PASS_PAGE = 500;
const LEADER_LEASE_NAME = 'reconciler';

export interface ReconcilerOptions {
  pool: Pool;
  schema: string;
  redis: Redis;
  prefix: string;
  relay: Relay;
  transport: JobTransport;
  workerId: string;
  logger: Logger;
  /** Defaults to {@link RECONCILE_INTERVAL_MS_DEFAULT}. */
  intervalMs?: number;
  /** Defaults to {@link FULL_PASS_INTERVAL_MS_DEFAULT}. */
  fullPassIntervalMs?: number;
  /** Called after Redis lost its data and the jobs were handed back. */
  onRedisReset?: () => Promise<void>;
}

/**
 * Repairs Redis from Postgres, in one replica at a time (a leader lease).
 *
 * - Redis losing its data (a restart without persistence, `FLUSHALL`, a
 *   failover) is seen as a missing or changed marker key, paired with a
 *   generation id kept in Postgres: every non-final job is handed back to
 *   the relay, which adds it again with its remaining delay.
 * - A full pass, every so often, checks each job BullMQ should have: one
 *   missing (a failover that lost recent writes but not the marker) is
 *   handed back; one BullMQ finished (it gave up: stalled too often, or
 *   failed) while Postgres says it is not final is removed from BullMQ and
 *   handed back, and the claim rules then decide.
 */
export class Reconciler {
  readonly #o: ReconcilerOptions;
  readonly #sql: ReturnType<typeof reconcilerSql>;
  readonly #intervalMs: number;
  readonly #fullPassIntervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  /**
   * The first full pass waits one interval: at start the marker check
   * covers a Redis that lost its data, and a large backlog should not be
   * walked at every restart.
   */
  #lastFullPass = Date.now();
  #closed = false;

  constructor(options: ReconcilerOptions) {
    this.#o = options;
    this.#sql = reconcilerSql(options.schema);
    this.#intervalMs = options.intervalMs ?? RECONCILE_INTERVAL_MS_DEFAULT;
    this.#fullPassIntervalMs =
      options.fullPassIntervalMs ?? FULL_PASS_INTERVAL_MS_DEFAULT;
  }

  start(): this {
    this.#schedule(0);
    return this;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#running;
    await this.#o.pool
      .query(this.#sql.resign, [LEADER_LEASE_NAME, this.#o.workerId])
      .catch(() => undefined);
  }

  /** One round: lead, check the marker, and the full pass when due. */
  async tick(): Promise<void> {
    if (!(await this.#lead())) return;
    await this.#checkMarker();
    if (Date.now() - this.#lastFullPass >= this.#fullPassIntervalMs) {
      this.#lastFullPass = Date.now();
      await this.fullPass();
    }
  }

  #schedule(delayMs: number): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#running = this.tick()
        .catch((error) =>
          this.#o.logger.warn(
            { err: error },
            'reconciler round failed; trying again',
          ),
        )
        .finally(() => {
          this.#running = undefined;
          this.#schedule(this.#intervalMs);
        });
    }, delayMs);
  }

  async #lead(): Promise<boolean> {
    const leaseMs = this.#intervalMs * 5;
    const { rowCount } = await this.#o.pool.query(this.#sql.lead, [
      LEADER_LEASE_NAME,
      this.#o.workerId,
      leaseMs,
    ]);
    return rowCount === 1;
  }

  async #checkMarker(): Promise<void> {
    const key = generationKey(this.#o.prefix);
    const [marker, { rows }] = await Promise.all([
      this.#o.redis.get(key),
      this.#o.pool.query<{ generation: string }>(this.#sql.generation),
    ]);
    const generation = rows[0]?.generation;
    if (marker && marker === generation) return;

    const { rows: reset } = await this.#o.pool.query<{
      generation: string;
      reset: number;
    }>(this.#sql.newGeneration);
    const next = reset[0]!;
    await this.#o.redis.set(key, next.generation);
    const level = generation ? 'warn' : 'info';
    this.#o.logger[level](
      { generation: next.generation, jobs: next.reset },
      generation
        ? 'Redis lost its data; every non-final job handed back to the relay'
        : 'no Redis generation yet; jobs handed to the relay once',
    );
    await this.#o.relay.wake();
    await this.#o.onRedisReset?.();
  }

  /** Compares every job BullMQ should have with what it has; repairs. */
  async fullPass(): Promise<{ checked: number; repaired: number }> {
    let after = '00000000-0000-0000-0000-000000000000';
    let checked = 0;
    let repaired = 0;
    for (;;) {
      const { rows } = await this.#o.pool.query<{
        id: string;
        job_type: string;
      }>(this.#sql.dispatchedPage, [after, FULL_PASS_PAGE]);
      if (rows.length === 0) break;
      checked += rows.length;
      repaired += await this.#repairPage(rows);
      after = rows.at(-1)!.id;
      if (rows.length < FULL_PASS_PAGE || this.#closed) break;
    }
    if (repaired > 0) {
      this.#o.logger.warn(
        { checked, repaired },
        'full pass handed jobs back to the relay',
      );
      await this.#o.relay.wake();
    }
    return { checked, repaired };
  }

  async #repairPage(rows: { id: string; job_type: string }[]): Promise<number> {
    const prefix = this.#o.prefix;
    const pipeline = this.#o.redis.pipeline();
    for (const { id, job_type } of rows) {
      pipeline.exists(`${prefix}:${job_type}:${id}`);
      pipeline.zscore(`${prefix}:${job_type}:failed`, id);
      pipeline.zscore(`${prefix}:${job_type}:completed`, id);
    }
    const answers = (await pipeline.exec()) ?? [];
    const missing: string[] = [];
    const finished: { id: string; job_type: string }[] = [];
    rows.forEach((row, i) => {
      const [exists, failed, completed] = [0, 1, 2].map(
        (k) => answers[i * 3 + k]?.[1],
      );
      if (exists === 0) missing.push(row.id);
      else if (failed !== null || completed !== null) finished.push(row);
    });

    const suspects = [...missing, ...finished.map((f) => f.id)];
    if (suspects.length === 0) return 0;

    // NOTE: jobs finish while a page is checked; only those still not
    // final now are repaired, so a job that just completed is left alone.
    const { rows: still } = await this.#o.pool.query<{ id: string }>(
      this.#sql.stillOpen,
      [suspects],
    );
    const open = new Set(still.map((r) => r.id));
    for (const { id, job_type } of finished) {
      if (open.has(id)) await this.#o.transport.queue(job_type).remove(id);
    }
    const ids = suspects.filter((id) => open.has(id));
    if (ids.length > 0) await this.#o.pool.query(this.#sql.undispatch, [ids]);
    return ids.length;
  }
}
