import { quoteIdent, type Queryable } from '@lana-jobs/core';
import { seedFacilitiesSql } from './interest-accrual-sql.js';

/** What {@link seedFacilities} makes; every field has a default. */
export interface SeedFacilitiesOptions {
  /** Defaults to `'0.075'` (7.5 % a year). A string: never a float. */
  annualRate?: string;
  /** Defaults to `'ACT/365F'`. */
  dayCount?: 'ACT/365F' | 'ACT/360';
  /** The disbursal of each facility. Defaults to `'1000000.00'`. */
  principal?: string;
  /** When it takes effect, `YYYY-MM-DD`. Defaults to `'2024-02-01'`. */
  disbursedOn?: string;
}

/**
 * Makes `count` active credit facilities in `schema`, each with one dated
 * disbursal, in one statement (for benchmarks and tests). Returns how many
 * it made.
 */
export async function seedFacilities(
  db: Queryable,
  schema: string,
  count: number,
  options: SeedFacilitiesOptions = {},
): Promise<number> {
  if (!Number.isInteger(count) || count < 0) {
    throw new RangeError(
      `seedFacilities: count must be a whole number ≥ 0, got ${count}`,
    );
  }
  const { rows } = await db.query<{ count: number }>(
    seedFacilitiesSql(quoteIdent(schema)),
    [
      count,
      options.annualRate ?? '0.075',
      options.dayCount ?? 'ACT/365F',
      options.disbursedOn ?? '2024-02-01',
      options.principal ?? '1000000.00',
    ],
  );
  return rows[0]!.count;
}
