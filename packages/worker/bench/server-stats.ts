/**
 * What Postgres and Redis did during a scenario's processing: transactions,
 * rows, WAL and its flushes, CPU of every Postgres process, Redis commands
 * and CPU. Taken as the difference of two snapshots. These are server-wide
 * counters: anything else talking to the same servers meanwhile (another
 * engineer's tests) is counted too, which is why the run warns about other
 * sessions.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import type pg from 'pg';
import type { Redis } from 'ioredis';

export interface ServerSnapshot {
  pg: Record<PgCounter, number>;
  /** CPU of the postmaster's children, living and reaped; null off this host. */
  postgresCpuMs: number | null;
  redisCpuMs: number;
  redisCommands: Record<string, number>;
  /** The whole machine's CPU (all cores), from /proc/stat; null off Linux. */
  host: HostCpu | null;
}

export interface HostCpu {
  /** Time of all cores together. */
  totalMs: number;
  /** Of which busy (neither idle nor waiting for I/O). */
  busyMs: number;
  /** Of which taken by the hypervisor for other guests. */
  stealMs: number;
}

export type ServerDelta = ServerSnapshot;

const PG_COUNTERS = [
  'xact_commit',
  'xact_rollback',
  'tup_inserted',
  'tup_updated',
  'tup_deleted',
  'tup_fetched',
  'wal_records',
  'wal_fpi',
  'wal_bytes',
  'wal_write',
  'wal_sync',
] as const;

export type PgCounter = (typeof PG_COUNTERS)[number];

const PG_STATS_SQL = `
  SELECT d.xact_commit, d.xact_rollback, d.tup_inserted, d.tup_updated,
    d.tup_deleted, d.tup_fetched, w.wal_records, w.wal_fpi, w.wal_bytes,
    w.wal_write, w.wal_sync
  FROM pg_stat_database d CROSS JOIN pg_stat_wal w
  WHERE d.datname = current_database()`;

/** Reads the servers' counters, on `client` (one session of the parent's). */
export class ServerStats {
  readonly #client: pg.ClientBase;
  readonly #redis: Redis;
  readonly #postmasterPid: number | null;
  readonly #ticksPerSecond: number;

  private constructor(client: pg.ClientBase, redis: Redis, pid: number | null) {
    this.#client = client;
    this.#redis = redis;
    this.#postmasterPid = pid;
    this.#ticksPerSecond = clockTicksPerSecond();
  }

  static async open(client: pg.ClientBase, redis: Redis): Promise<ServerStats> {
    const { rows } = await client.query<{ pid: number }>(
      'SELECT pg_backend_pid() AS pid',
    );
    return new ServerStats(client, redis, parentPid(rows[0]!.pid));
  }

  async snapshot(): Promise<ServerSnapshot> {
    // This session's own counters reach the shared view only when flushed
    // (Postgres 15 and later; older ones flush on their own, later).
    await this.#client
      .query('SELECT pg_stat_force_next_flush()')
      .catch(() => undefined);
    const { rows } = await this.#client.query(PG_STATS_SQL);
    const row = rows[0] as Record<PgCounter, string | number>;
    const pgCounters = Object.fromEntries(
      PG_COUNTERS.map((name) => [name, Number(row[name])]),
    ) as Record<PgCounter, number>;
    const info = await this.#redis.info('all');
    return {
      pg: pgCounters,
      postgresCpuMs: this.#postgresCpuMs(),
      redisCpuMs: redisCpuMs(info),
      redisCommands: redisCommandCalls(info),
      host: this.#hostCpu(),
    };
  }

  #hostCpu(): HostCpu | null {
    try {
      // cpu  user nice system idle iowait irq softirq steal …
      const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
      const ticks = line.split(/\s+/).slice(1).map(Number);
      const at = (i: number) => ticks[i] ?? 0;
      const toMs = (n: number) => (n * 1000) / this.#ticksPerSecond;
      const busy = at(0) + at(1) + at(2) + at(5) + at(6);
      return {
        totalMs: toMs(busy + at(3) + at(4) + at(7)),
        busyMs: toMs(busy),
        stealMs: toMs(at(7)),
      };
    } catch {
      return null;
    }
  }

  #postgresCpuMs(): number | null {
    if (this.#postmasterPid === null) return null;
    try {
      return (
        (processTreeTicks(this.#postmasterPid) * 1000) / this.#ticksPerSecond
      );
    } catch {
      return null;
    }
  }
}

/**
 * Client sessions on Postgres that are not this run's: their load would be
 * counted against the systems measured. This run's sessions end their
 * names with its tag, or (the runtime's own listeners, which name
 * themselves) come from a local port of one of `ownPids`.
 */
export async function foreignSessions(
  session: pg.ClientBase,
  runTag: string,
  ownPids: readonly number[] = [],
): Promise<number> {
  const { rows } = await session.query<{ n: string }>(
    `SELECT count(*) AS n FROM pg_stat_activity
     WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
       AND application_name NOT LIKE '%' || $1
       AND NOT (client_port = ANY($2::int[]))`,
    [runTag, localPortsOf(ownPids)],
  );
  return Number(rows[0]!.n);
}

/**
 * The local TCP ports of the sockets `pids` hold, from /proc (empty off
 * Linux): their sockets' inodes, looked up in /proc/net/tcp and tcp6.
 */
function localPortsOf(pids: readonly number[]): number[] {
  const inodes = new Set<string>();
  for (const pid of pids) {
    try {
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        const link = readlinkSafe(`/proc/${pid}/fd/${fd}`);
        const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
        if (inode) inodes.add(inode);
      }
    } catch {
      // The process has ended, or /proc is not there.
    }
  }
  const ports: number[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && inodes.has(f[9]!)) {
        ports.push(parseInt(f[1]!.split(':')[1]!, 16));
      }
    }
  }
  return ports;
}

function readlinkSafe(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return '';
  }
}

/** `after − before`, counter by counter. */
export function serverDelta(
  before: ServerSnapshot,
  after: ServerSnapshot,
): ServerDelta {
  const commands: Record<string, number> = {};
  for (const [name, calls] of Object.entries(after.redisCommands)) {
    const delta = calls - (before.redisCommands[name] ?? 0);
    // The snapshots' own INFO calls are not the scenario's.
    if (delta > 0 && name !== 'info') commands[name] = delta;
  }
  return {
    pg: Object.fromEntries(
      PG_COUNTERS.map((name) => [name, after.pg[name] - before.pg[name]]),
    ) as Record<PgCounter, number>,
    postgresCpuMs:
      after.postgresCpuMs === null || before.postgresCpuMs === null
        ? null
        : after.postgresCpuMs - before.postgresCpuMs,
    redisCpuMs: after.redisCpuMs - before.redisCpuMs,
    redisCommands: commands,
    host:
      after.host && before.host
        ? {
            totalMs: after.host.totalMs - before.host.totalMs,
            busyMs: after.host.busyMs - before.host.busyMs,
            stealMs: after.host.stealMs - before.host.stealMs,
          }
        : null,
  };
}

/**
 * The postmaster's CPU for its children already reaped (cutime, cstime)
 * plus that of its living children: the backends of a closed pool move
 * from the second to the first, so the difference of two readings is what
 * Postgres spent in between.
 */
function processTreeTicks(postmasterPid: number): number {
  const own = procStat(postmasterPid);
  let ticks = own.cutime + own.cstime + own.utime + own.stime;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const child = procStat(Number(entry));
      if (child.ppid === postmasterPid) ticks += child.utime + child.stime;
    } catch {
      // The process ended while the directory was read.
    }
  }
  return ticks;
}

/** The fields of /proc/<pid>/stat the benchmark reads (times in clock ticks). */
export function procStat(pid: number) {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which may hold spaces: state is first.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const field = (n: number) => Number(fields[n - 3]);
  return {
    ppid: field(4),
    utime: field(14),
    stime: field(15),
    cutime: field(16),
    cstime: field(17),
  };
}

/** The postmaster, if this host's /proc shows the backend `pid` at all. */
function parentPid(pid: number): number | null {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmdline.includes('postgres')) return null;
    return procStat(pid).ppid;
  } catch {
    return null;
  }
}

/** The unit of the times in /proc (`USER_HZ`). */
export function clockTicksPerSecond(): number {
  try {
    return (
      Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100
    );
  } catch {
    return 100;
  }
}

function redisCpuMs(info: string): number {
  const value = (name: string) =>
    Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
  return (value('used_cpu_user') + value('used_cpu_sys')) * 1000;
}

function redisCommandCalls(info: string): Record<string, number> {
  const calls: Record<string, number> = {};
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    calls[match[1]!] = Number(match[2]);
  }
  return calls;
}
