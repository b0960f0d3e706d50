-- Up Migration

-- The credit facilities the `interest-accrual` job accrues interest on, the
-- dated movements of their principal, the daily accruals, and the
-- bookkeeping of the daily runs (see jobs/interest-accrual/).

CREATE TABLE credit_facilities (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  customer_id uuid NOT NULL,
  status text NOT NULL DEFAULT 'active'
    CHECK (status IN ('pending', 'active', 'closed')),
  -- A fraction: 0.075 is 7.5 % a year.
  annual_rate numeric NOT NULL CHECK (annual_rate >= 0 AND annual_rate < 10),
  -- ACT/365F: every day is 1/365 of a year, a leap day too.
  day_count text NOT NULL DEFAULT 'ACT/365F'
    CHECK (day_count IN ('ACT/365F', 'ACT/360')),
  created_at timestamptz NOT NULL DEFAULT now()
);

-- The accrual's keyset scan: the active facilities in id order. NOTE: the
-- predicate must stay identical to the one in interest-accrual-sql.ts.
CREATE INDEX credit_facilities_active ON credit_facilities (id)
  WHERE status = 'active';

-- Disbursals and repayments, each dated by the banking day it takes effect.
-- The principal outstanding at the end of day D is the disbursals minus the
-- repayments with effective_date <= D, so a catch-up reads each day's own
-- balance, also when a movement was booked later.
CREATE TABLE facility_balance_events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  facility_id uuid NOT NULL REFERENCES credit_facilities (id),
  effective_date date NOT NULL,
  kind text NOT NULL CHECK (kind IN ('disbursal', 'repayment')),
  amount numeric(20, 2) NOT NULL CHECK (amount > 0),
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX facility_balance_events_by_day
  ON facility_balance_events (facility_id, effective_date)
  INCLUDE (kind, amount);

-- One row per facility and day: the primary key makes a second accrual of a
-- day impossible, whatever runs it again.
--
-- NOTE: amounts are kept exactly. A day's interest is principal × rate ÷
-- basis, and 1/365 has no finite decimal, so the exact value is kept as a
-- numerator over 26 280 (the least common multiple of 365 and 360):
-- principal × rate × 72 for ACT/365F, × 73 for ACT/360. `exact_amount` and
-- `running_exact_total` show those values to 30 places for people; the
-- postings are computed from the units, never from the rounded display.
CREATE TABLE interest_accruals (
  facility_id uuid NOT NULL REFERENCES credit_facilities (id),
  day date NOT NULL,
  principal numeric(20, 2) NOT NULL,
  annual_rate numeric NOT NULL,
  day_count text NOT NULL,
  -- The day's interest, in 1/26280 of a currency unit (exact).
  exact_units numeric NOT NULL,
  -- The month's interest up to this day, in 1/26280 units (exact).
  running_exact_units numeric NOT NULL,
  exact_amount numeric NOT NULL,
  running_exact_total numeric NOT NULL,
  -- round_half_even(running total) − round_half_even(previous running
  -- total): a month's postings sum to its exact total rounded once.
  posted_amount numeric(20, 2) NOT NULL,
  accrued_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (facility_id, day)
);

-- The last banking day every active facility has accrued; one row per
-- accrual schedule (`daily`).
CREATE TABLE accrual_checkpoints (
  name text PRIMARY KEY CHECK (name <> ''),
  last_accrued_day date NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- A day being accrued: how many batch jobs it was split into and how many
-- have committed. The batch that makes them equal advances the checkpoint.
CREATE TABLE accrual_runs (
  day date PRIMARY KEY,
  batches_total integer NOT NULL DEFAULT 0 CHECK (batches_total >= 0),
  batches_done integer NOT NULL DEFAULT 0
    CHECK (batches_done >= 0 AND batches_done <= batches_total),
  planned_at timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz
);

-- The keyset ranges of a day: the facilities with after_id < id <= until_id
-- (no upper bound when until_id is null).
CREATE TABLE accrual_batches (
  day date NOT NULL REFERENCES accrual_runs (day),
  after_id uuid NOT NULL,
  until_id uuid,
  job_id uuid,
  done_at timestamptz,
  PRIMARY KEY (day, after_id)
);

-- Half-even (banker's) rounding to cents of num ÷ den (den > 0), exactly:
-- quotient and remainder are whole numbers of numeric, so a half cent is
-- told from a value just above or below it however many places that takes.
-- NOTE: Postgres round() on numeric rounds halves away from zero.
CREATE FUNCTION accrual_cents_half_even(num numeric, den numeric)
  RETURNS numeric(20, 2)
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (sign(num) * (q + CASE
        WHEN 2 * r > den THEN 1
        WHEN 2 * r < den THEN 0
        ELSE mod(q, 2)
      END) / 100)::numeric(20, 2)
    FROM (
      SELECT div(abs(num) * 100, den) AS q,
        abs(num) * 100 - div(abs(num) * 100, den) * den AS r
    ) parts
  $$;

-- Down Migration

DROP FUNCTION accrual_cents_half_even(numeric, numeric);
DROP TABLE accrual_batches;
DROP TABLE accrual_runs;
DROP TABLE accrual_checkpoints;
DROP TABLE interest_accruals;
DROP TABLE facility_balance_events;
DROP TABLE credit_facilities;
