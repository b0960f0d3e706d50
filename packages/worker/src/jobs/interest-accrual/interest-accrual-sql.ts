/**
 * The interest accrual's statements. They run inside the attempt's fenced
 * transactions, whose `search_path` is the job schema, so tables are named
 * unqualified. Dates travel as `YYYY-MM-DD` text both ways (a `date` read
 * by `pg` would become a JavaScript `Date` at local midnight), amounts as
 * numeric text: no amount is ever a JavaScript number.
 *
 * NOTE: exact interest. A day's interest is principal × rate ÷ basis. It is
 * kept as a numerator over {@link UNITS_PER_CURRENCY_UNIT} (26 280, the
 * least common multiple of 365 and 360), which is exact in numeric: × 72
 * for ACT/365F, × 73 for ACT/360. Postings are rounded from those units by
 * `accrual_cents_half_even` (migration 0008), exactly and half to even.
 */

/** 26 280 = lcm(365, 360): a day's interest is a whole fraction of it. */
export const UNITS_PER_CURRENCY_UNIT = 26_280;

/**
 * Creates the checkpoint $1 the first time, just before the first day to
 * accrue: $2, else the earliest dated movement of any facility. With
 * neither, nothing is created (there is nothing to accrue yet).
 */
export const INIT_CHECKPOINT = `
  WITH first AS (
    SELECT coalesce($2::date,
      (SELECT min(effective_date) FROM facility_balance_events)) AS day
  )
  INSERT INTO accrual_checkpoints (name, last_accrued_day)
  SELECT $1, first.day - 1 FROM first WHERE first.day IS NOT NULL
  ON CONFLICT (name) DO NOTHING`;

/**
 * Locks checkpoint $1 (planners of all replicas queue here) and says which
 * day comes next and whether it has ended in time zone $3 at instant $2:
 * a day is closed once the bank's local date is past it.
 */
export const LOCK_CHECKPOINT = `
  SELECT c.last_accrued_day::text AS last_day,
    (c.last_accrued_day + 1)::text AS next_day,
    (c.last_accrued_day + 1) < ($2::timestamptz AT TIME ZONE $3)::date
      AS next_day_closed
  FROM accrual_checkpoints c
  WHERE c.name = $1
  FOR UPDATE`;

/** Opens the run of day $1; no row when it was already opened. */
export const START_RUN = `
  INSERT INTO accrual_runs (day) VALUES ($1::date)
  ON CONFLICT (day) DO NOTHING
  RETURNING day::text AS day`;

/**
 * The keyset boundaries of the active facilities, every $1-th id: range k
 * holds the ids after boundary k−1 up to boundary k, the last range has no
 * upper bound. Only ids are read (an index-only scan), one row per batch.
 */
export const RANGE_BOUNDARIES = `
  SELECT id::text AS id FROM (
    SELECT f.id, row_number() OVER (ORDER BY f.id) AS n,
      count(*) OVER () AS total
    FROM credit_facilities f
    WHERE f.status = 'active'
  ) numbered
  WHERE n % $1 = 0 AND n < total
  ORDER BY id`;

/**
 * Records the ranges of day $1 (after ids $2, until ids $3, their jobs $4)
 * and how many there are.
 */
export const RECORD_BATCHES = `
  WITH batches AS (
    INSERT INTO accrual_batches (day, after_id, until_id, job_id)
    SELECT $1::date, b.after_id, b.until_id, b.job_id
    FROM unnest($2::uuid[], $3::uuid[], $4::uuid[])
      AS b (after_id, until_id, job_id)
    ON CONFLICT (day, after_id) DO NOTHING
    RETURNING 1
  )
  UPDATE accrual_runs SET batches_total = batches_total
    + (SELECT count(*) FROM batches)
  WHERE day = $1::date`;

/**
 * Locks range $2 of day $1, so that two runs of one batch take turns; no
 * row when the day was never planned.
 */
export const LOCK_BATCH = `
  SELECT done_at IS NOT NULL AS done
  FROM accrual_batches
  WHERE day = $1::date AND after_id = $2::uuid
  FOR UPDATE`;

/**
 * Accrues day $1 for the active facilities with $2 < id <= $3 ($3 null: no
 * upper bound) that owe principal at the end of that day, and returns the
 * rows it inserted, nothing for a facility already accrued that day.
 *
 * - The principal is the sum of the facility's disbursals minus its
 *   repayments dated on or before $1: that day's own end-of-day balance.
 * - The running total restarts each calendar month; it continues from the
 *   facility's latest accrual earlier in the same month.
 * - posted = cents(running total) − cents(previous running total), both
 *   rounded half to even, so a month's postings add up to its exact total
 *   rounded once.
 */
export const ACCRUE_BATCH = `
  WITH facilities AS (
    SELECT f.id, f.customer_id, f.annual_rate, f.day_count,
      CASE f.day_count WHEN 'ACT/360' THEN 73 ELSE 72 END AS units_factor
    FROM credit_facilities f
    WHERE f.status = 'active'
      AND f.id > $2::uuid
      AND ($3::uuid IS NULL OR f.id <= $3::uuid)
  ), balances AS (
    SELECT fa.*, b.principal
    FROM facilities fa
    CROSS JOIN LATERAL (
      SELECT coalesce(sum(CASE e.kind
          WHEN 'disbursal' THEN e.amount ELSE -e.amount END), 0) AS principal
      FROM facility_balance_events e
      WHERE e.facility_id = fa.id AND e.effective_date <= $1::date
    ) b
  ), accruing AS (
    SELECT ba.*, ba.principal * ba.annual_rate * ba.units_factor AS units,
      coalesce(p.running_exact_units, 0) AS previous_units
    FROM balances ba
    LEFT JOIN LATERAL (
      SELECT a.running_exact_units
      FROM interest_accruals a
      WHERE a.facility_id = ba.id
        AND a.day < $1::date
        AND a.day >= date_trunc('month', $1::date)::date
      ORDER BY a.day DESC
      LIMIT 1
    ) p ON true
    WHERE ba.principal > 0
  ), inserted AS (
    INSERT INTO interest_accruals (facility_id, day, principal, annual_rate,
      day_count, exact_units, running_exact_units, exact_amount,
      running_exact_total, posted_amount)
    SELECT id, $1::date, principal, annual_rate, day_count, units,
      previous_units + units,
      round(round(units, 30) / ${UNITS_PER_CURRENCY_UNIT}, 30),
      round(round(previous_units + units, 30) / ${UNITS_PER_CURRENCY_UNIT}, 30),
      accrual_cents_half_even(previous_units + units, ${UNITS_PER_CURRENCY_UNIT})
        - accrual_cents_half_even(previous_units, ${UNITS_PER_CURRENCY_UNIT})
    FROM accruing
    ORDER BY id
    ON CONFLICT (facility_id, day) DO NOTHING
    RETURNING *
  )
  SELECT i.facility_id::text AS facility_id,
    fa.customer_id::text AS customer_id,
    i.day::text AS day,
    i.principal::text AS principal,
    i.annual_rate::text AS annual_rate,
    i.day_count,
    i.exact_amount::text AS exact_amount,
    i.running_exact_total::text AS running_exact_total,
    i.posted_amount::text AS posted_amount
  FROM inserted i
  JOIN facilities fa ON fa.id = i.facility_id
  ORDER BY i.facility_id`;

/**
 * Marks range $2 of day $1 done, once, and counts it in the day's run. The
 * run's row lock orders concurrent batches, each counting on the committed
 * total, so exactly one of them sees the day complete.
 */
export const MARK_BATCH_DONE = `
  WITH marked AS (
    UPDATE accrual_batches SET done_at = now()
    WHERE day = $1::date AND after_id = $2::uuid AND done_at IS NULL
    RETURNING 1
  )
  UPDATE accrual_runs r
  SET batches_done = r.batches_done + 1,
    completed_at = CASE WHEN r.batches_done + 1 = r.batches_total
      THEN now() END
  WHERE r.day = $1::date AND EXISTS (SELECT 1 FROM marked)
  RETURNING r.batches_done = r.batches_total AS day_complete`;

/**
 * Moves checkpoint $1 to day $2, only from the day before, and returns the
 * next day to plan.
 */
export const ADVANCE_CHECKPOINT = `
  UPDATE accrual_checkpoints
  SET last_accrued_day = $2::date, updated_at = now()
  WHERE name = $1 AND last_accrued_day = $2::date - 1
  RETURNING (last_accrued_day + 1)::text AS next_day`;

/**
 * For benchmarks and tests, outside a job (hence schema-qualified): $1
 * active facilities at rate $2 and day count $3, each with one disbursal of
 * $5 dated $4. Returns how many were made.
 */
export function seedFacilitiesSql(qualifiedSchema: string): string {
  const s = qualifiedSchema;
  return `
    WITH facilities AS (
      INSERT INTO ${s}.credit_facilities (customer_id, annual_rate, day_count)
      SELECT gen_random_uuid(), $2::numeric, $3 FROM generate_series(1, $1::int)
      RETURNING id
    ), disbursed AS (
      INSERT INTO ${s}.facility_balance_events
        (facility_id, effective_date, kind, amount)
      SELECT id, $4::date, 'disbursal', $5::numeric FROM facilities
      RETURNING 1
    )
    SELECT count(*)::int AS count FROM disbursed`;
}
