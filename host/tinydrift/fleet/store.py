"""The fleet store (PostgreSQL): its schema and ordered migrations, its day partitions, and
the collector's batch writer.

Every frame is one row of `frames`, partitioned by day of `received_at` (declarative range
partitioning; a day's partition is made when its first frame comes). A board is named by
(fleet, device_id), so fleets sharing a database may reuse ids, and a frame by its board,
boot_count and seq; the key adds received_at because PostgreSQL wants the
partition column in a partitioned table's key. That changes nothing: the gateway stamps
received_at once, when the frame enters its outbox, so every copy of a frame carries the same
one, and a copy delivered again is dropped by ON CONFLICT DO NOTHING.

INFERENCE and HEARTBEAT frames are also decoded into columns (the accuracy estimate,
confidence and entropy in plain units, so both kinds read alike), and so are a streaming
detector's DETECTION frames (its probability, the window's mean, whether it woke); `raw`
keeps the packet, so any column can be rebuilt. `devices` holds each board's latest identity, when it was last
heard, and the state the dashboard shows (BoardState: folded in as frames are stored, so
the dashboard reads no frames); `alarm_hours` which boards showed each alarm type in each
hour; `device_events` what a collector found odd: a HELLO contradicting the one before, a
model no --model-dir names.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field

from tinydrift.errors import TinydriftError
from tinydrift.fleet.envelope import Envelope
from tinydrift.fleet.mqtt import FLEET_EXTRA
from tinydrift.link import protocol as P
from tinydrift.logbook.store import to_int64

STATE_TYPES = (int(P.FrameType.INFERENCE), int(P.FrameType.HEARTBEAT))  # frames that carry alarms and accuracy
_STATE_TYPES = ", ".join(map(str, STATE_TYPES))
_HEARTBEAT = int(P.FrameType.HEARTBEAT)
_TYPES = len(P.ALARM_NAMES)
_LATCHED = (1 << _TYPES) - 1

# (version, what it does, SQL), applied in order, each once, in one transaction with its
# schema_version row. Never edit a step that has shipped: add the next one.
MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (1, "devices, and frames partitioned by day of received_at", """
CREATE TABLE devices (
    device_id bigint PRIMARY KEY,        -- the HELLO's u64, as signed 64-bit
    fleet text NOT NULL,
    model_id bytea NOT NULL,             -- the first 8 bytes of the model hash
    boot_count bigint NOT NULL,
    hello_at timestamptz,                -- received_at of the HELLO that set boot_count and model_id
    first_seen timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    frames bigint NOT NULL DEFAULT 0
);
CREATE TABLE frames (
    device_id bigint NOT NULL,
    boot_count bigint NOT NULL,
    seq bigint NOT NULL,
    received_at timestamptz NOT NULL,    -- when the gateway read it
    stored_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    fleet text NOT NULL,
    type smallint NOT NULL,
    model_id bytea NOT NULL,
    known_model boolean,                 -- NULL: the collector was given no model list
    raw bytea NOT NULL,                  -- the packet, sync ... CRC
    inference_index bigint,              -- INFERENCE and HEARTBEAT
    alarm_bits integer,
    alarm_index bigint,
    change_index bigint,
    moved_channels bigint,
    accuracy real,                       -- the label-free accuracy estimate, 0..1
    confidence real,                     -- 0..1 (HEARTBEAT: the window's mean)
    entropy real,                        -- nats (HEARTBEAT: the window's mean)
    predicted_class smallint,            -- INFERENCE
    scores integer[],
    uptime_ms bigint,                    -- HEARTBEAT
    window_size integer,
    latch_delay integer[],
    cusum_max integer[],
    class_share smallint[],
    PRIMARY KEY (device_id, boot_count, seq, received_at)
) PARTITION BY RANGE (received_at);
CREATE INDEX frames_by_type_and_time ON frames (type, received_at);
"""),
    (2, "device_events: contradicting HELLOs, unknown models", """
CREATE TABLE device_events (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    fleet text NOT NULL,
    device_id bigint NOT NULL,
    kind text NOT NULL,
    detail text NOT NULL
);
CREATE INDEX device_events_by_device ON device_events (device_id, at);
"""),
    (3, "frames_by_device_and_time: one device's latest state and timeline (the dashboard)", """
CREATE INDEX frames_by_device_and_time ON frames (device_id, received_at);
"""),
    (4, "a streaming detector's DETECTION frames: probability, window mean, wake, stream position", """
ALTER TABLE frames ADD COLUMN probability real,          -- DETECTION: 0..1
                   ADD COLUMN window_mean real,          -- DETECTION: the sliding window's mean, 0..1
                   ADD COLUMN wake boolean,              -- DETECTION: a detection
                   ADD COLUMN stream_position bigint;    -- DETECTION: samples into its stream
CREATE INDEX frames_wakes ON frames (device_id, received_at) WHERE wake;
"""),
    (5, "boards keyed by fleet and id: two fleets in one database may reuse ids", """
ALTER TABLE devices DROP CONSTRAINT devices_pkey, ADD PRIMARY KEY (fleet, device_id);
ALTER TABLE frames DROP CONSTRAINT frames_pkey, ADD PRIMARY KEY (fleet, device_id, boot_count, seq, received_at);
DROP INDEX frames_by_device_and_time;
CREATE INDEX frames_by_device_and_time ON frames (fleet, device_id, received_at);
DROP INDEX frames_wakes;
CREATE INDEX frames_wakes ON frames (fleet, device_id, received_at) WHERE wake;
DROP INDEX device_events_by_device;
CREATE INDEX device_events_by_device ON device_events (fleet, device_id, at);
"""),
    (6, "each board's state kept with it, and an hourly roll-up of alarms: the dashboard reads no frames", f"""
ALTER TABLE devices ADD COLUMN state_at timestamptz,        -- received_at of the latest INFERENCE or HEARTBEAT
                    ADD COLUMN alarm_bits integer,          --   of the model and boot (since hello_at) it names,
                    ADD COLUMN accuracy real,               --   its alarm word and accuracy estimate
                    ADD COLUMN wakes bigint NOT NULL DEFAULT 0,  -- DETECTION frames with wake, every boot
                    ADD COLUMN latch_index bigint[],        -- per alarm type (ALARM_NAMES order): the inference
                    ADD COLUMN latch_at timestamptz[];      --   it latched at, and when a frame first showed it
CREATE TABLE alarm_hours (                                  -- a board showed an alarm type latched in that hour
    fleet text NOT NULL,
    hour timestamptz NOT NULL,
    alarm smallint NOT NULL,                                -- the type's bit (ALARM_NAMES order)
    device_id bigint NOT NULL,
    PRIMARY KEY (fleet, hour, alarm, device_id)
);
CREATE INDEX alarm_hours_by_hour ON alarm_hours (hour);
WITH state AS (
    SELECT DISTINCT ON (d.fleet, d.device_id) d.fleet, d.device_id, f.received_at, f.alarm_bits, f.accuracy
    FROM devices d JOIN frames f USING (fleet, device_id)
    WHERE f.type IN ({_STATE_TYPES}) AND f.model_id = d.model_id AND f.boot_count = d.boot_count
      AND f.received_at > coalesce(d.hello_at, '-infinity')
    ORDER BY d.fleet, d.device_id, f.received_at DESC)
UPDATE devices d SET state_at = s.received_at, alarm_bits = s.alarm_bits, accuracy = s.accuracy
FROM state s WHERE s.fleet = d.fleet AND s.device_id = d.device_id;
UPDATE devices d SET wakes = w.n
FROM (SELECT fleet, device_id, count(*) AS n FROM frames WHERE wake GROUP BY 1, 2) w
WHERE w.fleet = d.fleet AND w.device_id = d.device_id;
WITH seen AS (
    SELECT d.fleet, d.device_id, k,
           min(CASE WHEN f.type = {_HEARTBEAT} AND f.latch_delay[k + 1] <> {P.NOT_LATCHED}
                    THEN f.alarm_index + f.latch_delay[k + 1] ELSE f.inference_index END) AS index,
           min(f.received_at) AS at
    FROM devices d JOIN frames f USING (fleet, device_id) CROSS JOIN generate_series(0, {_TYPES - 1}) k
    WHERE f.type IN ({_STATE_TYPES}) AND f.model_id = d.model_id AND f.boot_count = d.boot_count
      AND f.received_at > coalesce(d.hello_at, '-infinity') AND f.alarm_bits & (1 << k) <> 0
    GROUP BY 1, 2, 3),
latches AS (
    SELECT g.fleet, g.device_id, array_agg(s.index ORDER BY g.k) AS index, array_agg(s.at ORDER BY g.k) AS at
    FROM (SELECT fleet, device_id, k FROM devices CROSS JOIN generate_series(0, {_TYPES - 1}) k) g
    LEFT JOIN seen s USING (fleet, device_id, k)
    GROUP BY 1, 2)
UPDATE devices d SET latch_index = l.index, latch_at = l.at
FROM latches l WHERE l.fleet = d.fleet AND l.device_id = d.device_id;
INSERT INTO alarm_hours (fleet, hour, alarm, device_id)
SELECT DISTINCT f.fleet, date_trunc('hour', f.received_at), k, f.device_id
FROM frames f CROSS JOIN generate_series(0, {_TYPES - 1}) k
WHERE f.type IN ({_STATE_TYPES}) AND f.alarm_bits & (1 << k) <> 0;
"""),
)
MIGRATIONS += (
    (7, "devices.detector: a streaming detector's board, whose accuracy estimate the dashboard does not show", f"""
ALTER TABLE devices ADD COLUMN detector boolean NOT NULL DEFAULT false;  -- it sent DETECTION frames
UPDATE devices d SET detector = true
WHERE EXISTS (SELECT 1 FROM frames f
              WHERE f.fleet = d.fleet AND f.device_id = d.device_id AND f.type = {int(P.FrameType.DETECTION)});
"""),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]
_MIGRATION_LOCK = 0x7464_6D69  # pg_advisory_xact_lock keys: one migrator at a time,
_PARTITION_LOCK = 0x7464_7061  # one creator of a partition at a time

FRAME_COLUMNS = ("device_id", "boot_count", "seq", "received_at", "fleet", "type", "model_id", "known_model",
                 "raw", "inference_index", "alarm_bits", "alarm_index", "change_index", "moved_channels",
                 "accuracy", "confidence", "entropy", "predicted_class", "scores", "uptime_ms", "window_size",
                 "latch_delay", "cusum_max", "class_share", "probability", "window_mean", "wake", "stream_position")
_COL = {name: i for i, name in enumerate(FRAME_COLUMNS)}
_NONE = (None,) * (len(FRAME_COLUMNS) - 9)
_NO_DETECTION = (None,) * 4


UNIX_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
# A frame stamped this far ahead of the collector's clock, or before CLOCK_FLOOR (a board
# without a real-time clock starts at 1970), came through a gateway whose clock is off: it is
# stored as stamped, and said once per board (the map's hours and the HELLOs' order follow
# the stamps).
CLOCK_AHEAD = dt.timedelta(hours=1)
CLOCK_FLOOR = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
# A frame name (device, boot, seq) met again with another gateway stamp within this long is a
# second board under one id (or one board read by two gateways); a copy carries the stamp of
# the first. Farther apart it can be a sequence number that wrapped. The names are kept for
# the last SEEN_NAMES frames a collector stored.
SHARED_ID_WITHIN = dt.timedelta(hours=1)
SEEN_NAMES = 200_000


def frame_row(fleet: str, env: Envelope, known_model: bool | None) -> tuple:
    """The `frames` row of one envelope."""
    f, who = env.frame, env.identity
    received = UNIX_EPOCH + dt.timedelta(microseconds=env.received_us)  # exact: a float rounds 9999-12-31's last microsecond up
    head = (to_int64(who.device_id), who.boot_count, f.seq, received, fleet, int(f.TYPE), who.model_id,
            known_model, f.raw)
    if f.TYPE is P.FrameType.INFERENCE:
        return head + (f.inference_index, f.alarm_bits, f.alarm_index, f.change_index, to_int64(f.moved_channels),
                       f.atc / 65536.0, f.confidence / 256.0, f.entropy / 65536.0, f.predicted_class,
                       list(f.scores), None, None, None, None, None) + _NO_DETECTION
    if f.TYPE is P.FrameType.HEARTBEAT:
        return head + (f.inference_index, f.alarm_bits, f.alarm_index, f.change_index, to_int64(f.moved_channels),
                       f.atc / 256.0, f.mean_confidence / 256.0, f.mean_entropy / 4096.0, None, None,
                       f.uptime_ms, f.window, list(f.latch_delay), list(f.cusum_max), list(f.class_share)) + _NO_DETECTION
    if f.TYPE is P.FrameType.DETECTION:
        return head + (f.inference_index,) + (None,) * 14 + (f.probability / 256.0, f.window_mean / 256.0, f.wake,
                                                              f.stream_position)
    return head + _NONE


def day_partition(day: dt.date) -> tuple[str, str, str]:
    """(name, from, to) of the partition holding `day` (UTC). The last day a stamp can have
    (9999-12-31) has no next day in Python: its partition runs to PostgreSQL's infinity."""
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
    end = "infinity" if day == dt.date.max else (start + dt.timedelta(days=1)).isoformat()
    return f"frames_p{day:%Y%m%d}", start.isoformat(), end


@dataclass
class BatchResult:
    inserted: int = 0
    duplicates: int = 0
    events: list[tuple[int, str, str]] = field(default_factory=list)  # (device_id, kind, detail), new this batch


def shown_database(dsn: str) -> str:
    """`dsn` as a message or a page shows it: without its password (a URL's user:password@
    or a password= option), as broker URLs are shown; `fleet serve` may face a network."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    if "://" not in dsn:  # key=value form
        return re.sub(r"(?i)\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|\S*)", "password=...", dsn)
    parts = urlsplit(dsn)
    if parts.password is None and not any(k.lower() == "password" for k, _ in parse_qsl(parts.query)):
        return dsn  # as given (urlunsplit would fold an empty host's ///)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = f"{userinfo.split(':', 1)[0]}@{host}"
    query = urlencode([(k, "..." if k.lower() == "password" else v)
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe=".")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class FleetStore:
    """One connection to the fleet database. Raises StoreDown when it cannot be reached."""

    def __init__(self, dsn: str) -> None:
        try:
            import psycopg
        except ImportError:
            raise TinydriftError(f"{FLEET_EXTRA}: psycopg is missing") from None
        self._psycopg = psycopg
        self.dsn = dsn
        try:
            self.conn = psycopg.connect(dsn, connect_timeout=5)
        except psycopg.OperationalError as exc:
            text = str(exc)
            if text.startswith("connection is bad:"):  # libpq refused its options before any network: no outage
                raise TinydriftError(f"database {shown_database(dsn)!r}: {_first_line(exc)} (fix --db)") from None
            refusal = text.split("FATAL:", 1)[1].strip().splitlines()[0] if "FATAL:" in text else None
            if refusal and "the database system is" not in refusal:  # starting up or shutting down: wait
                # The server answered and said no (no such database or role, a wrong password):
                # waiting would not change that.
                raise TinydriftError(f"the database server refused {shown_database(dsn)!r}: {refusal} (fix --db, or "
                                     "create the database and the role)") from None
            raise StoreDown(_first_line(exc)) from None
        except psycopg.ProgrammingError as exc:  # a malformed connection string
            raise TinydriftError(f"database {shown_database(dsn)!r}: {_first_line(exc)} (give a PostgreSQL URL such as "
                                 "postgresql://USER@HOST:PORT/DB)") from None
        self._partitions: set[str] = set()
        self._unknown_seen: set[tuple[str, int, bytes]] = set()
        self._clock_said: set[tuple[str, int]] = set()
        self._seen: OrderedDict[tuple[str, int, int, int], dt.datetime] = OrderedDict()  # frame name -> its stamp
        self._shared_said: set[tuple[str, int]] = set()

    def migrate(self, target: int = SCHEMA_VERSION) -> int:
        """Bring the schema up to `target` (an older one only in tests of the upgrade);
        returns the version it found."""
        psycopg = self._psycopg
        c = self.conn
        try:
            with c.transaction():
                c.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                c.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, "
                          "description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
                found = c.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
                if found > SCHEMA_VERSION:
                    raise TinydriftError(f"the fleet database has schema {found}, newer than this tinydrift's "
                                         f"{SCHEMA_VERSION}: upgrade tinydrift")
                for version, description, sql in MIGRATIONS:
                    if found < version <= target:
                        c.execute(sql)
                        c.execute("INSERT INTO schema_version (version, description) VALUES (%s, %s)",
                                  (version, description))
        except psycopg.errors.DuplicateTable as exc:
            raise TinydriftError(f"the database already holds a table tinydrift did not make ({_first_line(exc)}): "
                                 "give the fleet a database of its own") from None
        except psycopg.OperationalError as exc:
            raise StoreDown(_first_line(exc)) from None
        # A store migrated to an older target (an older collector, in the upgrade's test)
        # writes the columns that schema has.
        present = {r[0] for r in c.execute("SELECT column_name FROM information_schema.columns "
                                           "WHERE table_name = 'frames' AND table_schema = current_schema()")}
        self._columns = [i for i, name in enumerate(FRAME_COLUMNS) if name in present]
        board_columns = {r[0] for r in c.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'devices' "
            "AND table_schema = current_schema()")}
        self._keeps_state = "state_at" in board_columns
        self._knows_detectors = "detector" in board_columns
        names = ", ".join(FRAME_COLUMNS[i] for i in self._columns)
        c.execute("DROP TABLE IF EXISTS pg_temp.staging")
        c.execute(f"CREATE TEMP TABLE staging AS SELECT {names} FROM frames WITH NO DATA")
        c.commit()
        return found

    def write(self, fleet: str, envelopes: list[Envelope], known_models: set[bytes] | None = None) -> BatchResult:
        """Store a batch in one transaction (COPY into a staging table, then INSERT ... ON
        CONFLICT DO NOTHING) with the devices' rows; on return, it is committed. Raises
        StoreDown (nothing written) when the database went away; a deadlock between two
        collectors is retried here."""
        psycopg = self._psycopg
        for attempt in range(5):
            try:
                return self._write(fleet, envelopes, known_models)
            except psycopg.errors.DeadlockDetected:
                self.conn.rollback()
            except psycopg.OperationalError as exc:
                self._partitions.clear()  # a restarted server: check again
                raise StoreDown(_first_line(exc)) from None
        raise StoreDown("deadlocked five times in a row with another collector")

    def _write(self, fleet: str, envelopes: list[Envelope], known_models: set[bytes] | None) -> BatchResult:
        result = BatchResult()
        known = (lambda m: None) if known_models is None else (lambda m: m in known_models)
        rows = [frame_row(fleet, e, known(e.identity.model_id)) for e in envelopes]
        c = self.conn
        names = ", ".join(FRAME_COLUMNS[i] for i in self._columns)
        with c.transaction():
            self._ensure_partitions({r[3].date() for r in rows})
            c.execute("TRUNCATE staging")
            with c.cursor().copy(f"COPY staging ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([row[i] for i in self._columns])
            wake = "wake" if "wake" in names else "NULL::boolean"
            inserted = c.execute(f"INSERT INTO frames ({names}) SELECT {names} FROM staging "
                                 f"ON CONFLICT DO NOTHING RETURNING device_id, {wake}").fetchall()
            result.inserted = len(inserted)
            result.duplicates = len(rows) - result.inserted
            per_device: dict[int, list[int]] = defaultdict(lambda: [0, 0])  # frames, wakes
            for device, woke in inserted:
                per_device[device][0] += 1
                per_device[device][1] += bool(woke)
            self._check_names(fleet, rows, result)
            self._update_devices(fleet, envelopes, rows, per_device, known_models, result)
        return result

    def _check_names(self, fleet: str, rows: list[tuple], result: BatchResult) -> None:
        """Say once per board when one of its frame names came again under another stamp."""
        for row in rows:
            device, boot, seq, at = row[0], row[1], row[2], row[3]
            if not device:
                continue  # a port that named no board yet: many boards are device 0
            name = (fleet, device, boot, seq)
            before = self._seen.get(name)
            if before is None:
                self._seen[name] = at
                if len(self._seen) > SEEN_NAMES:
                    self._seen.popitem(last=False)
            elif before != at and abs(at - before) < SHARED_ID_WITHIN and (fleet, device) not in self._shared_said:
                self._shared_said.add((fleet, device))
                result.events.append((device, "shared_id",
                                      f"frame {seq} of boot {boot} came twice, gateway stamps "
                                      f"{abs(at - before).total_seconds():.3f} s apart: two boards share this id, "
                                      "or one board is read by two gateways (both stored; give each board its "
                                      "own id)"))

    def _ensure_partitions(self, days: set[dt.date]) -> None:
        for day in sorted(days):
            name, start, end = day_partition(day)
            if name in self._partitions:
                continue
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PARTITION_LOCK,))
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF frames "
                              f"FOR VALUES FROM ('{start}') TO ('{end}')")
            self._partitions.add(name)

    def _update_devices(self, fleet: str, envelopes: list[Envelope], rows: list[tuple],
                        per_device: dict[int, list[int]], known_models: set[bytes] | None,
                        result: BatchResult) -> None:
        c = self.conn
        frames_of: dict[int, list[int]] = defaultdict(list)
        for i, row in enumerate(rows):
            frames_of[row[0]].append(i)
        devices = sorted(frames_of)  # lock rows in one order: two collectors never deadlock on them
        first = [rows[min(frames_of[d], key=lambda i: rows[i][3])] for d in devices]
        with c.cursor() as cur:
            cur.executemany("INSERT INTO devices (device_id, fleet, model_id, boot_count, first_seen, last_seen) "
                            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                            [(r[0], fleet, r[6], r[1], r[3], r[3]) for r in first])
        kept = ", state_at, alarm_bits, accuracy, latch_index, latch_at" if self._keeps_state else ""
        current = {r[0]: BoardState.of_row(r[1:]) for r in c.execute(
            f"SELECT device_id, boot_count, model_id, hello_at{kept} FROM devices WHERE fleet = %s "
            "AND device_id = ANY(%s) ORDER BY device_id FOR UPDATE", (fleet, devices)).fetchall()}
        updates, hours = [], set()
        for device in devices:
            state = current[device]
            order = sorted(frames_of[device], key=lambda i: rows[i][3])
            for i in order:
                env, row = envelopes[i], rows[i]
                at, boot, model = row[3], row[1], row[6]
                if env.frame.TYPE is P.FrameType.HELLO:
                    if state.hello_at is not None and at <= state.hello_at:
                        continue  # an older HELLO that came late: the newer one stands
                    if state.hello_at is not None:
                        self._check_hello(device, state, boot, model, result)
                    state = BoardState(boot, model, at)
                    continue
                if state.hello_at is None and boot > state.boot:
                    state = BoardState(boot, model, None)  # no HELLO seen yet: the newest boot the frames name
                bits = row[_COL["alarm_bits"]]
                if row[_COL["type"]] in STATE_TYPES and bits is not None:
                    state.show(env.frame, row)
                    hour = at.replace(minute=0, second=0, microsecond=0)
                    hours.update((fleet, hour, k, device) for k in range(_TYPES) if bits >> k & 1)
            if known_models is not None:
                for model in {rows[i][6] for i in order} - known_models:
                    if (fleet, device, model) not in self._unknown_seen:
                        self._unknown_seen.add((fleet, device, model))
                        result.events.append((device, "unknown_model",
                                              f"runs model {model.hex()}, which no --model-dir names: its frames are "
                                              "stored with known_model false"))
            last = max(rows[i][3] for i in order)
            self._check_clock(fleet, device, min(rows[i][3] for i in order), last, result)
            frames, wakes = per_device.get(device, (0, 0))
            kept_values = (state.state_at, state.alarm_bits, state.accuracy, state.latch_index,
                           state.latch_at, wakes) if self._keeps_state else ()
            if self._knows_detectors:
                kept_values += (any(rows[i][_COL["type"]] == int(P.FrameType.DETECTION) for i in order),)
            updates.append((state.boot, state.model, state.hello_at, last, frames, *kept_values, fleet, device))
        kept_set = (", state_at=%s, alarm_bits=%s, accuracy=%s, latch_index=%s, latch_at=%s, wakes=wakes+%s"
                    if self._keeps_state else "") + (", detector=detector OR %s" if self._knows_detectors else "")
        with c.cursor() as cur:
            cur.executemany("UPDATE devices SET boot_count=%s, model_id=%s, hello_at=%s, "
                            f"last_seen=greatest(last_seen, %s), frames=frames+%s{kept_set} "
                            "WHERE fleet=%s AND device_id=%s", updates)
            if self._keeps_state and hours:
                cur.executemany("INSERT INTO alarm_hours (fleet, hour, alarm, device_id) VALUES (%s, %s, %s, %s) "
                                "ON CONFLICT DO NOTHING", sorted(hours))
            if result.events:
                cur.executemany("INSERT INTO device_events (fleet, device_id, kind, detail) VALUES (%s, %s, %s, %s)",
                                [(fleet, d, k, t) for d, k, t in result.events])

    def _check_clock(self, fleet: str, device: int, first: dt.datetime, last: dt.datetime,
                     result: BatchResult) -> None:
        if (fleet, device) in self._clock_said:
            return
        ahead = last - dt.datetime.now(dt.timezone.utc)
        if ahead > CLOCK_AHEAD:
            detail = (f"frames stamped {last:%Y-%m-%d %H:%M} UTC, {ahead.total_seconds() / 3600:.1f} h ahead of the "
                      "collector's clock")
        elif first < CLOCK_FLOOR:
            detail = f"frames stamped {first:%Y-%m-%d %H:%M} UTC"
        else:
            return
        self._clock_said.add((fleet, device))
        result.events.append((device, "gateway_clock_off",
                              f"{detail}: the clock of the gateway it came through is off (set it, e.g. by NTP); "
                              "stored as stamped, and the fleet's hours and its HELLOs' order follow the stamps"))

    @staticmethod
    def _check_hello(device: int, state: "BoardState", boot: int, model: bytes, result: BatchResult) -> None:
        old_boot, old_model = state.boot, state.model
        if boot and old_boot and boot < old_boot:
            result.events.append((device, "boot_went_back",
                                  f"says boot {boot} after boot {old_boot} (by its gateway's stamps): its boot "
                                  "counter went back (reflashed, or two boards share one id), or a gateway's "
                                  "clock is off"))
        elif boot and boot == old_boot and model != old_model:
            result.events.append((device, "model_changed_in_boot",
                                  f"boot {boot} now runs model {model.hex()}, before {old_model.hex()}, "
                                  "without a new boot"))

    def close(self) -> None:
        try:
            self.conn.close()
        except self._psycopg.Error:
            pass


@dataclass
class BoardState:
    """One board's row in `devices` as a batch is folded in: who it is (boot and model since
    hello_at), and the state the dashboard shows, all of that identity: its latest alarm word
    and accuracy estimate, and where each alarm type latched. A HELLO (a boot, or RESET)
    restarts the monitor, and so the state."""

    boot: int
    model: bytes
    hello_at: dt.datetime | None
    state_at: dt.datetime | None = None
    alarm_bits: int | None = None
    accuracy: float | None = None
    latch_index: list = field(default_factory=lambda: [None] * _TYPES)
    latch_at: list = field(default_factory=lambda: [None] * _TYPES)

    @classmethod
    def of_row(cls, row: tuple) -> "BoardState":
        boot, model, hello_at, *kept = row
        state = cls(boot, bytes(model), hello_at)
        if kept:
            state.state_at, state.alarm_bits, state.accuracy = kept[:3]
            state.latch_index = list(kept[3] or [None] * _TYPES)
            state.latch_at = list(kept[4] or [None] * _TYPES)
        return state

    def show(self, frame: P.Frame, row: tuple) -> None:
        """Fold in an INFERENCE or HEARTBEAT frame (`row`, its frames row). Frames of another
        boot or model, or from before the HELLO, change nothing: the monitor they speak of is
        not this one."""
        at, bits = row[_COL["received_at"]], row[_COL["alarm_bits"]]
        if (row[_COL["boot_count"]] != self.boot or row[_COL["model_id"]] != self.model
                or (self.hello_at is not None and at <= self.hello_at)):
            return
        if self.state_at is None or at > self.state_at:
            self.state_at, self.alarm_bits, self.accuracy = at, bits, row[_COL["accuracy"]]
        for k in (k for k in range(_TYPES) if bits >> k & 1):
            delay = frame.latch_delay[k] if frame.TYPE is P.FrameType.HEARTBEAT else P.NOT_LATCHED
            index = frame.inference_index if delay == P.NOT_LATCHED else frame.alarm_index + delay
            if self.latch_index[k] is None or index < self.latch_index[k]:
                self.latch_index[k] = index
            if self.latch_at[k] is None or at < self.latch_at[k]:
                self.latch_at[k] = at


class StoreDown(Exception):
    """The fleet database cannot be reached (down, restarting, the network): try again later."""


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
