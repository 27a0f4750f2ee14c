"""The SQLite schema as a list of forward migrations.

A new store runs every step from the first, so a fresh file and an upgraded one end
at the same schema. Times are kept twice: as ISO text with the offset they were
given (what is read back) and as epoch seconds (``*_ts``, what is compared and
indexed).
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

_V1 = """
CREATE TABLE qflow_schema (version INTEGER NOT NULL, applied_at TEXT NOT NULL);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO counters VALUES ('incident', 0);
CREATE TABLE events (
    incident_id TEXT NOT NULL, seq INTEGER NOT NULL, at TEXT NOT NULL, type TEXT NOT NULL,
    actor TEXT, source TEXT, ruleset TEXT, data TEXT NOT NULL,
    PRIMARY KEY (incident_id, seq)
) WITHOUT ROWID;
CREATE TABLE incidents (
    id TEXT PRIMARY KEY, ord INTEGER NOT NULL, seq INTEGER NOT NULL, stage TEXT NOT NULL,
    open INTEGER NOT NULL, team TEXT, severity TEXT, category TEXT, owner TEXT, place TEXT,
    reported_ts REAL, first_due_ts REAL, external_id TEXT,
    incident TEXT, state TEXT NOT NULL
);
CREATE UNIQUE INDEX incidents_external ON incidents (external_id) WHERE external_id IS NOT NULL;
CREATE INDEX incidents_open ON incidents (open, team, severity, stage);
CREATE INDEX incidents_reported ON incidents (reported_ts, ord);
CREATE TABLE timers (
    incident_id TEXT NOT NULL, key TEXT NOT NULL, at TEXT NOT NULL, at_ts REAL NOT NULL,
    worker TEXT, lease_ts REAL,
    PRIMARY KEY (incident_id, key)
);
CREATE INDEX timers_at ON timers (at_ts);
CREATE TABLE outbox (
    id TEXT PRIMARY KEY, incident_id TEXT NOT NULL, channel TEXT NOT NULL, backend TEXT NOT NULL,
    created_at TEXT NOT NULL, created_ts REAL NOT NULL, next_at TEXT NOT NULL, next_ts REAL NOT NULL,
    payload TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL, last_error TEXT,
    fallback TEXT, worker TEXT, lease_ts REAL
);
CREATE INDEX outbox_ready ON outbox (status, next_ts);
CREATE INDEX outbox_incident ON outbox (incident_id);
CREATE TABLE attempts (
    message_id TEXT NOT NULL, number INTEGER NOT NULL, at TEXT NOT NULL, ok INTEGER NOT NULL,
    error TEXT, worker TEXT
);
CREATE INDEX attempts_message ON attempts (message_id);
"""

# Version 2: dedup keys for multi-channel intake, documents. Projections get typed
# tables of their own when the engine declares them (qflow.projection_sql).
_V2 = """
ALTER TABLE incidents ADD COLUMN dedup_key TEXT;
CREATE INDEX incidents_dedup ON incidents (dedup_key, reported_ts) WHERE dedup_key IS NOT NULL;
CREATE TABLE documents (
    kind TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
"""

# Version 3: intake writes less. Events become a rowid table with a unique
# (incident_id, seq): a row is a kilobyte or more, and WITHOUT ROWID tables suit rows
# under about a twentieth of a page (https://sqlite.org/withoutrowid.html). A state
# whose decision is the one its DecisionMade event holds names that event's seq in
# decision_seq instead of holding a second copy (the read joins it back); a later
# change to the decision makes the state keep its own copy again.
_V3 = """
CREATE TABLE events_v3 (
    incident_id TEXT NOT NULL, seq INTEGER NOT NULL, at TEXT NOT NULL, type TEXT NOT NULL,
    actor TEXT, source TEXT, ruleset TEXT, data TEXT NOT NULL,
    UNIQUE (incident_id, seq)
);
INSERT INTO events_v3 SELECT incident_id, seq, at, type, actor, source, ruleset, data FROM events
    ORDER BY incident_id, seq;
DROP TABLE events;
ALTER TABLE events_v3 RENAME TO events;
ALTER TABLE incidents ADD COLUMN decision_seq INTEGER;
"""

# Version 4: releasing a worker's claims finds them through an index. Without one the
# release at the end of every tick read the whole timers table (75 ms among a million
# open incidents, most of the tick); the indexes hold only claimed rows, a handful.
_V4 = """
CREATE INDEX timers_claimed ON timers (worker) WHERE worker IS NOT NULL;
CREATE INDEX outbox_claimed ON outbox (worker) WHERE worker IS NOT NULL;
"""

# Version 5: one timers row per incident. An incident has several timers (an
# escalation ladder sets six or seven) and a row each cost three b-tree inserts apiece
# at intake, most of a report's write. The row holds them as JSON ``[[key, at], ...]``
# and their earliest time as next_ts, which claiming orders by; a claim holds an
# incident's timers together, so one worker asks the incident at a time. A rowid table:
# the row is a few hundred bytes, and claiming and releasing update it in place
# (WITHOUT ROWID made both three to six times slower). The upgrade writes the JSON with
# group_concat, not json_group_array: SQLite's JSON functions are a build option
# before 3.38.
_V5 = r"""
CREATE TABLE timers_v5 (
    incident_id TEXT PRIMARY KEY, next_ts REAL NOT NULL, timers TEXT NOT NULL, worker TEXT, lease_ts REAL
);
INSERT INTO timers_v5 (incident_id, next_ts, timers, worker, lease_ts)
    SELECT incident_id, MIN(at_ts),
           '[' || group_concat('["' || replace(replace(replace(replace(replace(key, '\', '\\'), '"', '\"'),
               char(10), '\n'), char(13), '\r'), char(9), '\t') || '","' || at || '"]', ',')
               || ']',
           MAX(worker), MAX(lease_ts)
    FROM (SELECT * FROM timers ORDER BY incident_id, at_ts, key) GROUP BY incident_id;
DROP TABLE timers;
ALTER TABLE timers_v5 RENAME TO timers;
CREATE INDEX timers_next ON timers (next_ts, incident_id);
CREATE INDEX timers_claimed ON timers (worker) WHERE worker IS NOT NULL;
"""

# Version 6: "overdue" reads the clocks. ``dues`` holds the incident's due moments as
# its last write recorded them (``Write.dues``: the SLA clocks', which count pauses,
# resets and severity changes) as JSON ``[[clock, at], ...]``, and first_due_ts their
# earliest. A row written
# before (dues NULL) keeps first_due_ts from its decision's deadlines and is read by
# them until its next write; ``qflow db upgrade --store URL RULESET`` records them.
_V6 = """
ALTER TABLE incidents ADD COLUMN dues TEXT;
"""

#: ``(version, script)``: running the scripts up to N gives schema N.
MIGRATIONS: tuple[tuple[int, str], ...] = ((1, _V1), (2, _V2), (3, _V3), (4, _V4), (5, _V5), (6, _V6))
SCHEMA_VERSION = MIGRATIONS[-1][0]
