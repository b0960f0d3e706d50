/**
 * The outbox's statements, one named constant each, for one schema. Every
 * table is qualified by the schema, so that a caller's own connection (with
 * its own search_path) can publish inside its transaction.
 */
import { quoteIdent } from '../db.js';

export type OutboxSql = ReturnType<typeof outboxSql>;

/** The outbox's statements for `schema` (validated, then quoted). */
export function outboxSql(schema: string) {
  const s = quoteIdent(schema);
  return {
    /**
     * Records one event and notifies the consumers, in the caller's
     * transaction: Postgres delivers the notification on commit only, and
     * once per transaction however often it is sent (same channel, same
     * empty payload).
     */
    publish: `
      WITH event AS (
        INSERT INTO ${s}.outbox_events (name, payload, trace_context)
        VALUES ($1, $2, $3)
        RETURNING sequence
      )
      SELECT event.sequence::text AS sequence, pg_notify($4, '')
      FROM event`,

    /**
     * One active consumer of a name at a time, across replicas: a
     * transaction-level lock, released by the commit (never a session lock,
     * which would stay behind on a pooled connection). The string cannot be
     * an entity lock's (`<schema>:<key>`): a schema has no `-`.
     */
    lockConsumer: `
      SELECT pg_try_advisory_xact_lock(
        hashtextextended('outbox-consumer:' || $1 || ':' || $2, 0)) AS locked`,

    /**
     * The consumer's cursor (0 before its first event), the events after
     * it in sequence order, and the oldest transaction still running, all
     * from one snapshot: the gap rule needs the rows and that xmin to agree.
     * Always one row, with null event columns when there is no event.
     */
    readBatch: `
      WITH cursor AS (
        SELECT COALESCE((SELECT last_sequence FROM ${s}.outbox_cursors
          WHERE name = $1), 0) AS last_sequence
      )
      SELECT cursor.last_sequence::text AS cursor,
        pg_snapshot_xmin(pg_current_snapshot())::text AS xmin,
        e.sequence::text AS sequence, e.name, e.payload, e.trace_context,
        e.created_at
      FROM cursor
      LEFT JOIN LATERAL (
        SELECT * FROM ${s}.outbox_events
        WHERE sequence > cursor.last_sequence
        ORDER BY sequence
        LIMIT $2
      ) e ON true
      ORDER BY e.sequence`,

    /**
     * Gives the consumer's transaction its id now: every transaction that
     * took a sequence number the consumer has seen passed is older.
     */
    currentXid: `SELECT pg_current_xact_id()::text AS xid`,

    /**
     * Whether no transaction that could still fill a hole is running: one
     * that holds a write lock on `outbox_events` (taken before it drew its
     * number, held until it ends) and whose id is not younger than $1 (the
     * consumer's id when it first saw the hole). Reads `pg_locks`, which
     * costs more than a snapshot; used only for a hole older than the gap
     * timeout. Prepared transactions show there too.
     */
    noHoleWriters: `
      SELECT NOT EXISTS (
        SELECT 1
        FROM pg_locks r
        JOIN pg_locks x ON x.virtualtransaction = r.virtualtransaction
        WHERE r.locktype = 'relation'
          AND r.database = (SELECT oid FROM pg_database
            WHERE datname = current_database())
          AND r.relation = '${s}.outbox_events'::regclass
          AND r.mode = 'RowExclusiveLock'
          AND r.granted
          AND x.locktype = 'transactionid'
          AND x.mode = 'ExclusiveLock'
          AND x.granted
          AND age(x.transactionid) >= age(xid($1::xid8))
      ) AS free`,

    /**
     * Moves the cursor from $2 to $3, in the handlers' transaction; touches
     * no row unless the cursor still stood at $2.
     */
    advanceCursor: `
      INSERT INTO ${s}.outbox_cursors AS c (name, last_sequence, updated_at)
      VALUES ($1, $3, clock_timestamp())
      ON CONFLICT (name) DO UPDATE
        SET last_sequence = EXCLUDED.last_sequence,
          updated_at = EXCLUDED.updated_at
        WHERE c.last_sequence = $2`,

    /** A consumer's cursor, or none before its first event. */
    getCursor: `
      SELECT last_sequence::text AS last_sequence, updated_at
      FROM ${s}.outbox_cursors WHERE name = $1`,
  };
}
