-- Up Migration

-- The payments a facility owes, as far as notifications need them: who to
-- remind, of what, and when it is due. Kept here rather than borrowed from
-- the customer and credit-facility tables so that the notification job has
-- something real to read on its own.
CREATE TABLE payment_schedules (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  facility_id uuid NOT NULL,
  customer_email text NOT NULL,
  due_date date NOT NULL,
  amount numeric(20, 2) NOT NULL CHECK (amount > 0),
  currency char(3) NOT NULL DEFAULT 'USD',
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  -- One payment per facility and due date: it names the reminder.
  UNIQUE (facility_id, due_date)
);

CREATE INDEX payment_schedules_due_date ON payment_schedules (due_date);

-- One row per notification the mail server accepted, written in its own
-- fenced transaction right after the server's reply, and read before any
-- send: a retry of a notification recorded here does not send it again.
CREATE TABLE notifications_sent (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- `<kind>:<subject id>:<due date>`, e.g. `payment-reminder:<facility>:2025-07-14`.
  idempotency_key text NOT NULL UNIQUE,
  job_id uuid NOT NULL,
  kind text NOT NULL,
  recipient text NOT NULL,
  message_id text NOT NULL,
  -- The server's reply to the message, e.g. `250 OK: queued as 4F2A`.
  smtp_response text,
  sent_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX notifications_sent_job_id ON notifications_sent (job_id);

-- Down Migration

DROP TABLE notifications_sent;
DROP TABLE payment_schedules;
