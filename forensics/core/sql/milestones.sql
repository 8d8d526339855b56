-- Schema version 2: incident milestones recorded by the investigators (case.mark):
-- detected, acknowledged, contained, mitigated, resolved, ... Append-only: a later mark of
-- the same name supersedes an earlier one, and both stay in the table.
CREATE TABLE IF NOT EXISTS milestones (
    milestone_id VARCHAR,
    name         VARCHAR,
    ts           TIMESTAMP,     -- when it happened (UTC)
    note         VARCHAR,
    source       VARCHAR,       -- recorded (case.mark) / import
    recorded_at  TIMESTAMP      -- when it was written into the case
);
