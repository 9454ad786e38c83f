-- t2 catalog schema, version 1. Every statement is idempotent (applied on each open).
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP DEFAULT now());

CREATE TABLE IF NOT EXISTS models (
    weights_hash VARCHAR PRIMARY KEY,  -- sha256 of the state dict
    alias        VARCHAR NOT NULL,
    source       VARCHAR NOT NULL,
    n_params     BIGINT,
    first_seen   TIMESTAMP DEFAULT now()
);

CREATE TABLE IF NOT EXISTS decompositions (
    decomp_key   VARCHAR PRIMARY KEY,  -- content key in the artifact store
    weights_hash VARCHAR NOT NULL,
    targets      VARCHAR NOT NULL,     -- mlp | attn | both
    path         VARCHAR NOT NULL,
    n_matrices   INTEGER,
    bytes        BIGINT,
    seconds      DOUBLE,               -- SVD compute time
    max_error    DOUBLE,               -- max over matrices of max |U diag(S) V^T - W|
    created_at   TIMESTAMP DEFAULT now()
);

CREATE TABLE IF NOT EXISTS decomposition_matrices (
    decomp_key VARCHAR, name VARCHAR, rows INTEGER, cols INTEGER, max_error DOUBLE,
    PRIMARY KEY (decomp_key, name)
);

CREATE TABLE IF NOT EXISTS datasets (
    task VARCHAR, split VARCHAR, file VARCHAR, sha256 VARCHAR, n_records INTEGER,
    first_seen TIMESTAMP DEFAULT now(),
    PRIMARY KEY (task, split, file, sha256)
);

CREATE TABLE IF NOT EXISTS runs (
    run_id       VARCHAR PRIMARY KEY,  -- content hash of what determines the result
    kind         VARCHAR NOT NULL,     -- eval | svd | train | ...
    model        VARCHAR,
    weights_hash VARCHAR,
    task         VARCHAR,
    task_version VARCHAR,
    split        VARCHAR,
    config_hash  VARCHAR,
    config_json  VARCHAR,
    data_hashes  VARCHAR,              -- JSON {file: sha256}
    git_sha      VARCHAR,
    seed         INTEGER,
    status       VARCHAR NOT NULL,     -- running | completed | failed
    error        VARCHAR,
    started_at   TIMESTAMP,
    finished_at  TIMESTAMP,
    seconds      DOUBLE
);

CREATE TABLE IF NOT EXISTS metrics (
    run_id VARCHAR, name VARCHAR, value DOUBLE,
    PRIMARY KEY (run_id, name)
);

CREATE TABLE IF NOT EXISTS samples (
    run_id    VARCHAR,
    idx       INTEGER,
    sample_id VARCHAR,
    prompt    VARCHAR,
    output    VARCHAR,
    parsed    VARCHAR,
    target    VARCHAR,
    correct   BOOLEAN,
    detail    VARCHAR,
    PRIMARY KEY (run_id, idx)
);

CREATE TABLE IF NOT EXISTS experts (
    expert_id    VARCHAR PRIMARY KEY,
    weights_hash VARCHAR NOT NULL,
    task         VARCHAR,
    method       VARCHAR,              -- svf | lora | ia3 | dora | ...
    targets      VARCHAR,
    path         VARCHAR,
    run_id       VARCHAR,
    metrics_json VARCHAR,
    created_at   TIMESTAMP DEFAULT now()
);

INSERT INTO schema_version (version) SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM schema_version WHERE version = 1);

-- v2: SVF training
ALTER TABLE runs ADD COLUMN IF NOT EXISTS variant VARCHAR;  -- base | svf:<expert id> | ...
CREATE TABLE IF NOT EXISTS curves (
    run_id      VARCHAR,
    step        INTEGER,
    mean_reward DOUBLE,
    train_acc   DOUBLE,
    kl          DOUBLE,
    loss        DOUBLE,
    grad_norm   DOUBLE,
    valid_acc   DOUBLE,
    wall_s      DOUBLE,
    tokens      INTEGER,
    PRIMARY KEY (run_id, step)
);
INSERT INTO schema_version (version) SELECT 2 WHERE NOT EXISTS (SELECT 1 FROM schema_version WHERE version = 2);

-- v3: what produced each result, as structured columns (issue 9). Runs and samples written
-- before v3 get `method` / `expert_ids` from their variant string once (catalog/migrate.py).
ALTER TABLE runs ADD COLUMN IF NOT EXISTS method VARCHAR;        -- base | svf | lora | lora-pg | ia3 | dora
ALTER TABLE runs ADD COLUMN IF NOT EXISTS expert_ids VARCHAR[];  -- svf:<hex> expert ids, or one adapter id
ALTER TABLE runs ADD COLUMN IF NOT EXISTS alphas DOUBLE[];       -- mixing weights of an SVF mixture (paper §3.3)
ALTER TABLE runs ADD COLUMN IF NOT EXISTS strategy VARCHAR;      -- the adaptation strategy that chose them
ALTER TABLE runs ADD COLUMN IF NOT EXISTS threads INTEGER;       -- torch threads of the process that ran it (t2core/threads.py)
ALTER TABLE samples ADD COLUMN IF NOT EXISTS expert_ids VARCHAR[];
ALTER TABLE samples ADD COLUMN IF NOT EXISTS alphas DOUBLE[];
ALTER TABLE samples ADD COLUMN IF NOT EXISTS decision VARCHAR;   -- the strategy's decision for this sample

-- v4: how each expert was made (svf-pg, svf-ntp, few-shot-mixture, transfer, lora-ntp, lora-pg, ia3, dora),
-- as written by what made it; rows from before are filled once (catalog/migrate.py)
ALTER TABLE experts ADD COLUMN IF NOT EXISTS origin VARCHAR;
