-- Up Migration

-- The governance domain the `approval-processing` job acts on: a disbursal
-- of a credit facility waits for an approval process, which an automatic
-- policy approves at once and a committee decides by its votes.

CREATE TABLE disbursals (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  facility_id uuid NOT NULL,
  amount numeric(20, 2) NOT NULL CHECK (amount > 0),
  status text NOT NULL DEFAULT 'awaiting_approval'
    CHECK (status IN ('awaiting_approval', 'approved', 'cancelled')),
  created_at timestamptz NOT NULL DEFAULT now(),
  decided_at timestamptz,
  CHECK ((status = 'awaiting_approval') = (decided_at IS NULL))
);

CREATE INDEX disbursals_facility_id ON disbursals (facility_id);

-- One process guards one disbursal. A committee process needs `threshold`
-- approvals from its members (committee_members); an automatic one has no
-- threshold and no members.
CREATE TABLE approval_processes (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  disbursal_id uuid NOT NULL UNIQUE REFERENCES disbursals (id),
  policy text NOT NULL CHECK (policy IN ('auto', 'committee')),
  threshold integer CHECK (threshold >= 1),
  status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'approved', 'denied')),
  created_at timestamptz NOT NULL DEFAULT now(),
  concluded_at timestamptz,
  CHECK ((policy = 'committee') = (threshold IS NOT NULL)),
  CHECK ((status = 'pending') = (concluded_at IS NULL))
);

CREATE TABLE committee_members (
  process_id uuid NOT NULL REFERENCES approval_processes (id),
  member text NOT NULL CHECK (member <> ''),
  PRIMARY KEY (process_id, member)
);

-- NOTE: the foreign key to committee_members makes a vote by anyone not on
-- the committee impossible, whatever the code above it checks; the primary
-- key makes a second vote of one member impossible.
CREATE TABLE approval_votes (
  process_id uuid NOT NULL,
  voter text NOT NULL,
  approve boolean NOT NULL,
  cast_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (process_id, voter),
  FOREIGN KEY (process_id, voter)
    REFERENCES committee_members (process_id, member)
);

-- Down Migration

DROP TABLE approval_votes;
DROP TABLE committee_members;
DROP TABLE approval_processes;
DROP TABLE disbursals;
