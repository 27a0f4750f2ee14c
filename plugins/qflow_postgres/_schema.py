"""The tables, their version, and the forward migrations between versions.

Version N is reached by applying ``MIGRATIONS[1..N]`` in order, each in the same
transaction as the version bump, so a migration is either done or not started.
"""

from __future__ import annotations

__all__ = ["CURRENT", "DEDUP_LOCK", "MIGRATIONS", "LOCK_KEY"]

#: pg_advisory_xact_lock key taken while creating or migrating the schema, so workers
#: starting together do not race to create the same tables.
LOCK_KEY = 0x71F10_0001
#: The first key of the two-key pg_advisory_xact_lock a write of a new incident with a
#: dedup key takes (the second is a hash of the schema and the key), so two workers
#: cannot both open an incident for one anomaly. Two-key locks never meet LOCK_KEY.
DEDUP_LOCK = 0x71F1_D0D0

# Times in columns are timestamptz (compared and indexed) with the UTC offset they were
# given in seconds (``*_offset``), so they are read back as written, like the bodies.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE qflow_incidents (
            id text PRIMARY KEY,
            ord bigserial,
            seq integer NOT NULL,
            stage text NOT NULL,
            open boolean NOT NULL,
            team text, severity text, category text, owner text, place text,
            reported_at timestamptz,
            updated_at timestamptz NOT NULL,
            sort_at timestamptz NOT NULL,
            sort_n bigint NOT NULL,
            min_due timestamptz,
            external_id text,
            body json NOT NULL)""",
        "CREATE INDEX qflow_incidents_open ON qflow_incidents (team, severity, stage) WHERE open",
        "CREATE INDEX qflow_incidents_reported ON qflow_incidents (sort_at, sort_n, id)",
        """CREATE TABLE qflow_events (
            incident_id text NOT NULL,
            seq integer NOT NULL,
            at timestamptz NOT NULL,
            type text NOT NULL,
            body json NOT NULL,
            PRIMARY KEY (incident_id, seq))""",
        # The first incident to claim an external id keeps it (a retry finds it).
        """CREATE TABLE qflow_external (
            external_id text PRIMARY KEY,
            incident_id text NOT NULL)""",
        """CREATE TABLE qflow_deadlines (
            incident_id text NOT NULL,
            clock text NOT NULL,
            due timestamptz NOT NULL,
            due_offset integer NOT NULL,
            PRIMARY KEY (incident_id, clock))""",
        "CREATE INDEX qflow_deadlines_due ON qflow_deadlines (due)",
        """CREATE TABLE qflow_timers (
            incident_id text NOT NULL,
            key text NOT NULL,
            at timestamptz NOT NULL,
            at_offset integer NOT NULL,
            claimed_by text,
            lease_until timestamptz,
            PRIMARY KEY (incident_id, key))""",
        "CREATE INDEX qflow_timers_at ON qflow_timers (at, incident_id, key)",
        """CREATE TABLE qflow_outbox (
            id text PRIMARY KEY,
            incident_id text NOT NULL,
            channel text NOT NULL,
            backend text NOT NULL,
            created_at timestamptz NOT NULL,
            next_attempt_at timestamptz NOT NULL,
            status text NOT NULL,
            attempts integer NOT NULL,
            claimed_by text,
            lease_until timestamptz,
            body json NOT NULL)""",
        "CREATE INDEX qflow_outbox_pending ON qflow_outbox (next_attempt_at, created_at, id) "
        "WHERE status = 'pending'",
        "CREATE INDEX qflow_outbox_incident ON qflow_outbox (incident_id)",
        """CREATE TABLE qflow_attempts (
            message_id text NOT NULL,
            number integer NOT NULL,
            at timestamptz NOT NULL,
            ok boolean NOT NULL,
            body json NOT NULL,
            PRIMARY KEY (message_id, number))""",
        """CREATE TABLE qflow_documents (
            kind text NOT NULL,
            id text NOT NULL,
            version integer NOT NULL,
            body json NOT NULL,
            PRIMARY KEY (kind, id))""",
        "CREATE SEQUENCE qflow_incident_ids",
    ),
    # Multi-channel intake (dedup keys) and the per-incident rows of projections.
    2: (
        "ALTER TABLE qflow_incidents ADD COLUMN dedup_key text",
        "CREATE INDEX qflow_incidents_dedup ON qflow_incidents (dedup_key, sort_at) WHERE dedup_key IS NOT NULL",
        """CREATE TABLE qflow_projection_rows (
            projection text NOT NULL,
            incident_id text NOT NULL,
            n integer NOT NULL,
            body json NOT NULL,
            PRIMARY KEY (projection, incident_id, n))""",
    ),
    # Projections get typed tables of their own when the engine declares them
    # (qflow.projection_sql); the JSON rows of version 2 move into them then, so the
    # table goes now only where it holds nothing. Releasing a worker's claims finds them
    # by index instead of reading every timer.
    3: (
        """DO $$ BEGIN
             IF NOT EXISTS (SELECT 1 FROM qflow_projection_rows) THEN DROP TABLE qflow_projection_rows; END IF;
           END $$""",
        "CREATE INDEX qflow_timers_claimed ON qflow_timers (claimed_by) WHERE claimed_by IS NOT NULL",
        "CREATE INDEX qflow_outbox_claimed ON qflow_outbox (claimed_by) WHERE claimed_by IS NOT NULL",
    ),
    # "Overdue" reads the clocks: an incident's qflow_deadlines rows are the due moments
    # its last write recorded (Write.dues: the SLA clocks', which count pauses, resets
    # and severity changes), min_due their earliest, when clock_dues is true. A row
    # written before (false) keeps its decision's deadlines, read as they were, until
    # its next write; ``qflow db upgrade --store URL RULESET`` records them.
    4: (
        "ALTER TABLE qflow_incidents ADD COLUMN clock_dues boolean NOT NULL DEFAULT false",
    ),
}

CURRENT = max(MIGRATIONS)
