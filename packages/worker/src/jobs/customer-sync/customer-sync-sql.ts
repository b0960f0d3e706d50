/**
 * The SQL of the customer sync. Tables are unqualified: fenced
 * transactions run with `search_path` set to the job schema.
 */

/** The lowest uuid: the keyset cursor before the first batch. */
export const CUSTOMER_CURSOR_START = '00000000-0000-0000-0000-000000000000';

/**
 * The next batch of customers whose verification can still change
 * (PENDING with an applicant id; REJECTED with a RETRY rejection), after
 * the cursor `$1`, at most `$2`.
 *
 * NOTE: the predicate is the one of the partial index `customers_kyc_open`
 * (migration 0007); keep them identical.
 */
export const SELECT_OPEN_CUSTOMERS = `
SELECT id, applicant_id, kyc_verification, kyc_reject_type
FROM customers
WHERE applicant_id IS NOT NULL
  AND (kyc_verification = 'PENDING'
    OR (kyc_verification = 'REJECTED' AND kyc_reject_type = 'RETRY'))
  AND id > $1
ORDER BY id
LIMIT $2`;

/**
 * Records a change of verification, only if the customer still has the
 * verification `$2` and reject type `$7` that were read: of two overlapping
 * runs, one updates the row and publishes; the other finds no row and
 * publishes nothing.
 *
 * $1 id, $2 old verification, $3 new verification, $4 reject type,
 * $5 reject labels, $6 raw review JSON, $7 old reject type.
 */
export const UPDATE_CUSTOMER_KYC = `
UPDATE customers
SET kyc_verification = $3,
    kyc_reject_type = $4,
    kyc_reject_labels = $5,
    kyc_review_raw = $6,
    kyc_updated_at = now()
WHERE id = $1 AND kyc_verification = $2
  AND kyc_reject_type IS NOT DISTINCT FROM $7
RETURNING id`;
