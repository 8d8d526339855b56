-- forensics case file: canonical tables (schema version 1).
-- Times are TIMESTAMP in UTC. Evidence tables (evidence, rejects, events, retrievals,
-- moderations, feedback, changes) are append-only: the library never updates or deletes them.

CREATE TABLE IF NOT EXISTS meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR
);

CREATE SEQUENCE IF NOT EXISTS evidence_seq START 1;

CREATE TABLE IF NOT EXISTS evidence (
    evidence_id    INTEGER,
    path           VARCHAR,
    sha256         VARCHAR,
    bytes          BIGINT,
    format         VARCHAR,
    target         VARCHAR,      -- events / changes / feedback
    loader_version VARCHAR,
    loaded_at      TIMESTAMP,
    records_in     BIGINT,
    rows_loaded    BIGINT,
    rows_rejected  BIGINT,
    mapping        JSON
);

CREATE TABLE IF NOT EXISTS rejects (
    evidence_id INTEGER,
    locator     VARCHAR,
    reason      VARCHAR,
    raw         VARCHAR
);

CREATE TABLE IF NOT EXISTS events (
    event_id          VARCHAR,
    trace_id          VARCHAR,
    span_id           VARCHAR,
    parent_id         VARCHAR,
    ts                TIMESTAMP,
    duration_ms       DOUBLE,
    user_id           VARCHAR,
    session_id        VARCHAR,
    feature           VARCHAR,
    kind              VARCHAR,
    name              VARCHAR,
    provider          VARCHAR,
    model             VARCHAR,
    response_model    VARCHAR,
    prompt_name       VARCHAR,
    prompt_version    VARCHAR,
    retrieval_version VARCHAR,
    release           VARCHAR,
    system_prompt     VARCHAR,
    input_text        VARCHAR,
    output_text       VARCHAR,
    finish_reason     VARCHAR,
    status            VARCHAR,
    error             VARCHAR,
    input_tokens      BIGINT,
    output_tokens     BIGINT,
    cost_usd          DOUBLE,
    tool_name         VARCHAR,
    tool_args         VARCHAR,
    attributes        JSON,
    evidence_id       INTEGER,
    locator           VARCHAR
);

CREATE TABLE IF NOT EXISTS retrievals (
    event_id    VARCHAR,
    rank        INTEGER,
    doc_id      VARCHAR,
    score       DOUBLE,
    content     VARCHAR,
    evidence_id INTEGER
);

CREATE TABLE IF NOT EXISTS moderations (
    event_id    VARCHAR,
    stage       VARCHAR,
    category    VARCHAR,
    flagged     BOOLEAN,
    score       DOUBLE,
    action      VARCHAR,
    evidence_id INTEGER
);

CREATE TABLE IF NOT EXISTS feedback (
    event_id    VARCHAR,
    trace_id    VARCHAR,
    user_id     VARCHAR,
    ts          TIMESTAMP,
    name        VARCHAR,
    value       VARCHAR,
    score       DOUBLE,       -- numeric reading of value where there is one
    negative    BOOLEAN,      -- thumbs down, low rating, complaint, reviewer "bad"
    comment     VARCHAR,
    source      VARCHAR,
    attributes  JSON,
    evidence_id INTEGER,
    locator     VARCHAR
);

CREATE TABLE IF NOT EXISTS changes (
    change_id    VARCHAR,
    ts           TIMESTAMP,
    kind         VARCHAR,
    feature      VARCHAR,
    from_version VARCHAR,
    to_version   VARCHAR,
    source       VARCHAR,     -- declared / inferred
    note         VARCHAR,
    attributes   JSON,
    evidence_id  INTEGER,
    locator      VARCHAR
);

CREATE TABLE IF NOT EXISTS runs (
    run_id     VARCHAR,
    stage      VARCHAR,
    params     JSON,
    created_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS labels (
    event_id   VARCHAR,
    label      VARCHAR,
    source     VARCHAR,       -- rule / reviewer / classifier / import
    confidence DOUBLE,
    detail     VARCHAR,
    run_id     VARCHAR
);

CREATE TABLE IF NOT EXISTS clusters (
    cluster_id VARCHAR,
    run_id     VARCHAR,
    title      VARCHAR,
    terms      VARCHAR[],
    size       BIGINT,
    category   VARCHAR,
    detail     JSON
);

CREATE TABLE IF NOT EXISTS cluster_members (
    event_id   VARCHAR,
    cluster_id VARCHAR,
    run_id     VARCHAR
);

CREATE TABLE IF NOT EXISTS findings (
    finding_id      VARCHAR,
    title           VARCHAR,
    note            VARCHAR,
    kind            VARCHAR,
    sql             VARCHAR,
    params          JSON,
    result          JSON,
    evidence_sha256 VARCHAR[],
    created_at      TIMESTAMP
);
