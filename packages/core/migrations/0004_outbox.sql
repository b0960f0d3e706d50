-- Up Migration

-- The transactional outbox: domain events committed with the write that
-- caused them, handed to named consumers in sequence order (see
-- packages/core/src/outbox.ts for how holes in the sequence are handled).

-- NOTE: CACHE 1 (the default) is part of the gap rule: a session that cached
-- numbers ahead could insert one below a number already committed, long
-- after a consumer passed it as a hole. Never raise it.
CREATE SEQUENCE outbox_events_sequence_seq AS bigint CACHE 1;

-- Takes the next number only once the transaction has its transaction id,
-- so that any transaction that holds a number is older than a consumer that
-- later sees a higher one (the consumer compares transaction ids, see
-- outbox.ts). As the column's default, it covers every writer, not only
-- publish(). The sequence comes as an argument (resolved when the default is
-- created), so callers with their own search_path reach the right one.
CREATE FUNCTION outbox_next_sequence(seq regclass) RETURNS bigint
  LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM pg_current_xact_id();
  RETURN nextval(seq);
END
$$;

-- Append-only. The sequence is the order consumers see; it has holes
-- (rolled-back writers, a crash skipping cached sequence values).
CREATE TABLE outbox_events (
  sequence bigint PRIMARY KEY
    DEFAULT outbox_next_sequence('outbox_events_sequence_seq'),
  name text NOT NULL CHECK (name <> ''),
  payload jsonb NOT NULL,
  -- The W3C trace context of the publisher, so that the work a consumer
  -- does joins the trace of the write that caused it.
  trace_context jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);

ALTER SEQUENCE outbox_events_sequence_seq OWNED BY outbox_events.sequence;

-- One row per consumer: the last sequence whose handler committed, written
-- in the same transaction as the handler's work.
CREATE TABLE outbox_cursors (
  name text PRIMARY KEY CHECK (name <> ''),
  last_sequence bigint NOT NULL DEFAULT 0 CHECK (last_sequence >= 0),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Down Migration

DROP TABLE outbox_cursors;
DROP TABLE outbox_events;
DROP FUNCTION outbox_next_sequence(regclass);
