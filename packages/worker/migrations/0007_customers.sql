-- Up Migration

-- The customers of the bank, as far as the jobs need them: who they are and
-- where their KYC verification stands. The customer-sync job reads the
-- review status of each applicant from Sumsub and records a change of
-- verification here, together with a `CustomerKycVerificationUpdated`
-- outbox event in the same transaction.
CREATE TABLE customers (
  id uuid PRIMARY KEY,
  email text NOT NULL,
  -- Sumsub's applicant id; null until the customer started KYC.
  applicant_id text,
  kyc_verification text NOT NULL DEFAULT 'PENDING'
    CHECK (kyc_verification IN ('PENDING', 'VERIFIED', 'REJECTED')),
  -- Sumsub's reviewRejectType (FINAL or RETRY) of a REJECTED customer.
  kyc_reject_type text CHECK (kyc_reject_type IN ('FINAL', 'RETRY')),
  kyc_reject_labels text[],
  -- The raw status answer that caused the last change, as Sumsub sent it.
  kyc_review_raw jsonb,
  kyc_updated_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- The sync's keyset query: the customers whose verification can still
-- change, in id order. NOTE: the predicate must stay identical to the one
-- in jobs/customer-sync/customer-sync-sql.ts, or the planner cannot use it.
CREATE INDEX customers_kyc_open ON customers (id)
  WHERE applicant_id IS NOT NULL
    AND (kyc_verification = 'PENDING'
      OR (kyc_verification = 'REJECTED' AND kyc_reject_type = 'RETRY'));

-- Down Migration

DROP TABLE customers;
