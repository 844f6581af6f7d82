"""The fleet store on a real PostgreSQL: copies stored once, day partitions made as frames
come, migrations applied once however many collectors start together, and databases it
must not touch refused."""

from __future__ import annotations

import datetime as dt
import random
import re
import threading

import click
import pytest

from tinydrift.errors import TinydriftError
from tinydrift.fleet.dashboard import MAP_SQL, OVERVIEW_SQL, FleetView, device_page
from tinydrift.fleet.envelope import Envelope, Identity
from tinydrift.fleet.simulate import SimulatedDevice
from tinydrift.fleet.store import SCHEMA_VERSION, FleetStore
from tinydrift.link import protocol as P
from tinydrift.monitor.config import ALARM_DATA_DRIFT

psycopg = pytest.importorskip("psycopg")
WHO = Identity(0x1234, 2, bytes(range(8)))


def envelopes(n: int, received: dt.datetime, first_seq: int = 0) -> list[Envelope]:
    rng = random.Random(first_seq)
    out = []
    for seq in range(first_seq, first_seq + n):
        frame = P.parse_packet(P.encode_packet(P.typical_inference(seq, seq, WHO.model_id, rng)))
        out.append(Envelope(WHO, int(received.timestamp() * 1e6) + (seq - first_seq) * 1_000_000, frame))  # 1 a second
    return out


def board_run(device_id: int, boot_count: int, start: dt.datetime, *, model: int = 0, drifts: bool = False,
              inferences: int = 30) -> list[Envelope]:
    """A simulated board's HELLO and frames, a second apart from `start`; a drifting one
    latches DATA_DRIFT on every frame after its HELLO."""
    board = SimulatedDevice(device_id, boot_count=boot_count, model_hash=bytes([model]) * 32, heartbeat_interval=10)
    frames = board.boot()
    while board.inferences < inferences:
        frames += board.infer()
    who = Identity.of_hello(frames[0])
    out = []
    for i, frame in enumerate(frames):
        if drifts and i:
            frame.alarm_bits, frame.alarm_index = ALARM_DATA_DRIFT, 1
        at = int((start + dt.timedelta(seconds=i)).timestamp() * 1e6)
        out.append(Envelope(who, at, P.parse_packet(P.encode_packet(frame))))
    return out


def test_a_batch_written_twice_is_stored_once(fleet_dsn):
    store = FleetStore(fleet_dsn)
    store.migrate()
    batch = envelopes(300, dt.datetime.now(dt.timezone.utc))
    first = store.write("f", batch)
    again = store.write("f", batch[100:] + envelopes(50, dt.datetime.now(dt.timezone.utc), first_seq=1000))
    assert (first.inserted, first.duplicates) == (300, 0)
    assert (again.inserted, again.duplicates) == (50, 200)
    with psycopg.connect(fleet_dsn) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT seq) FROM frames").fetchone() == (350, 350)
        assert conn.execute("SELECT frames FROM devices").fetchone() == (350,)
        row = conn.execute("SELECT raw, accuracy, scores FROM frames WHERE seq = 7").fetchone()
    frame = batch[7].frame
    assert bytes(row[0]) == frame.raw and row[1] == pytest.approx(frame.atc / 65536) and tuple(row[2]) == frame.scores
    store.close()


def test_each_day_gets_its_partition_when_its_first_frame_comes(fleet_dsn):
    store = FleetStore(fleet_dsn)
    store.migrate()
    old_day = dt.datetime(2024, 2, 29, 23, 59, 59, tzinfo=dt.timezone.utc)  # the frames run past midnight
    store.write("f", envelopes(5, old_day) + envelopes(5, dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), 100))
    with psycopg.connect(fleet_dsn) as conn:
        partitions = [r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'frames'::regclass ORDER BY 1")]
        per_partition = conn.execute("SELECT tableoid::regclass::text, count(*) FROM frames GROUP BY 1 ORDER BY 1").fetchall()
    assert partitions == ["frames_p20240229", "frames_p20240301", "frames_p20260101"]
    assert per_partition == [("frames_p20240229", 1), ("frames_p20240301", 4), ("frames_p20260101", 5)]
    store.close()


def test_collectors_starting_together_migrate_once(fleet_dsn):
    found, errors = [], []

    def start():
        try:
            store = FleetStore(fleet_dsn)
            found.append(store.migrate())
            store.close()
        except Exception as exc:  # noqa: BLE001 (the test reports it)
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and sorted(found) == [0, SCHEMA_VERSION, SCHEMA_VERSION, SCHEMA_VERSION]
    with psycopg.connect(fleet_dsn) as conn:
        assert [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY 1")] == \
            list(range(1, SCHEMA_VERSION + 1))


def test_a_newer_schema_and_a_database_of_something_else_are_refused(fleet_services, fleet_dsn):
    store = FleetStore(fleet_dsn)
    store.migrate()
    store.close()
    with psycopg.connect(fleet_dsn) as conn:
        conn.execute("INSERT INTO schema_version (version, description) VALUES (99, 'from the future')")
    with pytest.raises(TinydriftError, match="schema 99, newer than"):
        FleetStore(fleet_dsn).migrate()
    other = fleet_services[1].new_database("someone_elses")
    with psycopg.connect(other) as conn:
        conn.execute("CREATE TABLE devices (name text)")
    with pytest.raises(TinydriftError, match="did not make"):
        FleetStore(other).migrate()


def test_a_database_that_does_not_exist_is_a_clear_error_not_an_outage(fleet_services):
    _, database = fleet_services
    with pytest.raises(TinydriftError, match='database "nothing_here" does not exist'):
        FleetStore(database.dsn.rsplit("/", 1)[0] + "/nothing_here")
    # an option libpq refuses before any network is no outage to wait out either
    with pytest.raises(TinydriftError, match='invalid sslmode value: "bogus" \\(fix --db\\)'):
        FleetStore(database.dsn + "?sslmode=bogus")


def test_a_database_url_s_password_is_never_shown(fleet_services):
    """`fleet serve`'s 503 page (which --host 0.0.0.0 puts on a network) and collect's
    errors showed the --db URL with its password, where broker URLs already left theirs out
    (trial 16). The dashboard, the store and the URL check show it without."""
    from tinydrift.cli.params import DATABASE_URL
    from tinydrift.fleet.dashboard import FleetView
    from tinydrift.fleet.store import shown_database

    _, database = fleet_services
    user_at = database.dsn.split("://", 1)[1].split("@", 1)[0]
    with_password = database.dsn.replace(f"{user_at}@", f"{user_at}:s3cret@", 1)
    missing = with_password.rsplit("/", 1)[0] + "/nothing_here"
    for make in (FleetStore, FleetView):
        with pytest.raises(TinydriftError) as refused:
            make(missing)
        assert "s3cret" not in str(refused.value) and f"{user_at}@" in str(refused.value), refused.value
    with pytest.raises(click.BadParameter) as malformed:
        DATABASE_URL.convert("mysql://me:s3cret@host/db", None, None)
    assert "s3cret" not in str(malformed.value) and "me@host" in str(malformed.value)
    assert shown_database("host=h password='a b' dbname=x") == "host=h password=... dbname=x"
    assert shown_database("postgresql://u@h/db?password=s3cret&sslmode=require") == \
        "postgresql://u@h/db?password=...&sslmode=require"


def test_a_database_of_an_older_schema_is_upgraded_in_place(fleet_dsn):
    now = dt.datetime.now(dt.timezone.utc)
    older = FleetStore(fleet_dsn)
    assert older.migrate(target=2) == 0
    older.write("f", envelopes(20, now))
    older.close()
    store = FleetStore(fleet_dsn)
    assert store.migrate() == 2
    assert store.write("f", envelopes(30, now)).inserted == 10  # 20 were there
    assert store.write("g", envelopes(30, now)).inserted == 30  # the same id in another fleet is another board
    store.close()
    with psycopg.connect(fleet_dsn) as conn:
        assert conn.execute("SELECT max(version), count(*) FROM schema_version").fetchone() == (SCHEMA_VERSION,) * 2
        assert conn.execute("SELECT count(*) FROM frames").fetchone() == (60,)
        assert conn.execute("SELECT fleet, frames FROM devices ORDER BY fleet").fetchall() == [("f", 30), ("g", 30)]
        indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'frames'")}
    assert "frames_by_device_and_time" in indexes


def test_two_fleets_in_one_database_may_reuse_ids(fleet_dsn):
    """Two fleets numbered from 1 share a database: each board is its own row with its own
    boot and state, and no boot "goes back" because the other fleet's board of that id booted
    fewer times. Even frames alike to the microsecond are both kept."""
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    store = FleetStore(fleet_dsn)
    store.migrate()
    first = store.write("plant", board_run(1, 7, start, drifts=True) + board_run(2, 7, start))
    second = store.write("kws", board_run(1, 2, start + dt.timedelta(minutes=1)) + board_run(2, 7, start))
    store.close()
    assert first.events == second.events == [] and second.duplicates == 0
    view = FleetView(fleet_dsn)
    try:
        boards = {(d.fleet, d.device_id): (d.boot_count, d.state) for d in view.devices()}
        plant_only = [(d.fleet, d.device_id) for d in FleetView(fleet_dsn, "plant").devices()]
    finally:
        view.close()
    assert boards == {("plant", 1): (7, "drifting"), ("plant", 2): (7, "quiet"),
                      ("kws", 1): (2, "quiet"), ("kws", 2): (7, "quiet")}
    assert plant_only == [("plant", 1), ("plant", 2)]


def test_a_board_shows_the_state_of_the_model_and_boot_it_last_named(fleet_dsn):
    """Emulated boards (and builds without an id) are all device 0. When a second one's HELLO
    names another model, the row names that model, and its state is that model's, not the
    drifting first board's whose frames still come in after it."""
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    drifting = board_run(0, 0, start, model=1, drifts=True, inferences=60)
    quiet = board_run(0, 0, start + dt.timedelta(seconds=5), model=2)
    store = FleetStore(fleet_dsn)
    store.migrate()
    store.write("lab", drifting + quiet)
    store.close()
    assert max(e.received_us for e in drifting) > max(e.received_us for e in quiet)  # the drifting board spoke last
    view = FleetView(fleet_dsn)
    try:
        (row,) = view.devices()
    finally:
        view.close()
    assert (row.model_id, row.state) == (bytes([2]) * P.MODEL_ID_BYTES, "quiet")


def latched_run(device_id: int, start: dt.datetime, inferences: int, latch_at: int) -> list[Envelope]:
    """A board's HELLO, INFERENCE frames and a HEARTBEAT every 100, a second apart, that
    latches DATA_DRIFT at inference `latch_at` and shows it from there on."""
    board = SimulatedDevice(device_id, boot_count=3, heartbeat_interval=100)
    frames = board.boot()
    while board.inferences < inferences:
        frames += board.infer()
    for frame in frames[1:]:
        if frame.inference_index >= latch_at:
            frame.alarm_bits, frame.alarm_index = ALARM_DATA_DRIFT, latch_at
            if isinstance(frame, P.Heartbeat):
                frame.latch_delay = (0,) + (P.NOT_LATCHED,) * (len(P.ALARM_NAMES) - 1)
    who = Identity.of_hello(frames[0])
    return [Envelope(who, int((start + dt.timedelta(seconds=i)).timestamp() * 1e6), P.parse_packet(P.encode_packet(f)))
            for i, f in enumerate(frames)]


def test_a_board_keeps_where_each_alarm_latched_however_many_frames_came_since(fleet_dsn):
    """The device page once read latches off its newest 2,000 frames: a board that latched at
    inference 316 and sent 2,500 more showed every type latched at the window's first frame.
    The collector keeps each type's latch with the board, whatever order batches come in."""
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)
    run = latched_run(5, start, inferences=3000, latch_at=316)
    store = FleetStore(fleet_dsn)
    store.migrate()
    for batch in (run[2000:], run[:700], run[700:2000]):  # the latest first, as a second collector may
        store.write("long", batch)
    store.close()
    first_shown = next(e for e in run if getattr(e.frame, "alarm_bits", 0))
    view = FleetView(fleet_dsn)
    try:
        latches = view.latches("long", 5)
        timeline = view.timeline("long", 5)
        (row,) = view.devices()
    finally:
        view.close()
    at = dt.datetime.fromtimestamp(first_shown.received_us / 1e6, dt.timezone.utc)
    assert latches == [(at, "DATA_DRIFT", 316, 3)]
    assert timeline[0][0] > at  # outside the frames drawn: listed, not drawn
    assert (row.state, row.alarm_bits) == ("drifting", ALARM_DATA_DRIFT)
    page = device_page("long", 5, timeline, latches, []).decode()
    assert "<td>DATA_DRIFT</td>" in page and "<td>316</td>" in page and "class='alarm'" not in page


def test_the_overview_and_the_alarm_map_read_no_frames(fleet_dsn):
    """The overview once read every board's frames to find its latest state (17 s for 2,477
    boards and 1.86 M frames, past its own 10 s refresh): it and the alarm map now read the
    boards' rows and the hourly roll-up only."""
    store = FleetStore(fleet_dsn)
    store.migrate()
    store.write("f", latched_run(1, dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1), 300, 100))
    store.close()
    counts = ", ".join(f"count(a.device_id) FILTER (WHERE a.alarm = {k})" for k in range(len(P.ALARM_NAMES)))
    with psycopg.connect(fleet_dsn) as conn:
        for sql, args in ((OVERVIEW_SQL, {"fleet": None, "latched": 31, "hours": 24}),
                          (MAP_SQL.format(counts=counts), {"fleet": "f", "hours": 24, "ahead": dt.timedelta(hours=1)})):
            plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql, args))
            assert "frames" not in plan, plan


def test_every_alarm_map_count_can_be_read_on_its_shade():
    """A rising cell's count was red on a background shaded red by the share of devices: at a
    whole fleet alarming, red on the same red, hidden exactly when it matters most (trial
    16). Every cell's text keeps a contrast of 3:1 or more (WCAG's large-text floor) on its
    shade, from no device to all of them."""
    import re

    from tinydrift.fleet.dashboard import DeviceRow, overview_page

    def luminance(rgb):
        linear = [(c / 255) / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    now = dt.datetime(2026, 12, 7, 8, tzinfo=dt.timezone.utc)
    devices = [DeviceRow(k, "f", bytes(8), 1, now, 10, 1, 0.5) for k in range(4)]
    hours = [(now + dt.timedelta(hours=h), [n] * len(P.ALARM_NAMES)) for h, n in enumerate([0, 1, 2, 3, 4, 0, 4])]
    page = overview_page(devices, hours).decode()
    style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    cells = re.findall(r"<td class='(map[^']*)' data-type='[A-Z_]+' style='background: rgba\((\d+), (\d+), (\d+), "
                       r"([\d.]+)\)'>(\d+)</td>", page)
    assert len(cells) == len(hours) * len(P.ALARM_NAMES)
    assert "td.map.dark { color: #fff; }" in style and "color: #222" in style
    assert "rising" in page and not re.search(r"rising[^}]*color", style)  # marked by weight, not colour
    for classes, r, g, b, alpha, count in cells:
        shade = [round(float(alpha) * int(c) + (1 - float(alpha)) * 255) for c in (r, g, b)]
        text = (255, 255, 255) if "dark" in classes.split() else (34, 34, 34)
        lighter, darker = sorted([luminance(shade), luminance(text)], reverse=True)
        assert (lighter + 0.05) / (darker + 0.05) >= 3.0, (classes, alpha, count)


def test_a_fleets_alarm_map_is_of_its_own_newest_hours(fleet_dsn):
    """`fleet serve --fleet old` showed an empty map while that fleet's boards drifted: its
    24 hours were counted back from the newest frame of any fleet."""
    now = dt.datetime.now(dt.timezone.utc)
    store = FleetStore(fleet_dsn)
    store.migrate()
    store.write("old", latched_run(1, now - dt.timedelta(hours=30), 300, 100))
    store.write("new", board_run(1, 1, now - dt.timedelta(minutes=5)))
    store.close()
    view = FleetView(fleet_dsn, "old")
    try:
        hours = view.alarm_map()
    finally:
        view.close()
    drift = P.ALARM_NAMES.index("DATA_DRIFT")
    assert hours and hours[-1][1][drift] == 1 and hours[-1][0] < now - dt.timedelta(hours=29)


def test_a_gateway_whose_clock_is_off_is_said_once_and_does_not_blank_the_map(fleet_dsn):
    """One HELLO stamped two days ahead moved the map's 24 hours past today, all zeros, while
    boards drifted now; a gateway without a set clock (1970) made a board's new boot read as
    its boot counter going back, blaming the board (trial 16). Such frames are stored as
    stamped; the board's clock is said once, the map keeps to the boards stamped up to now."""
    from tinydrift.fleet.store import UNIX_EPOCH

    now = dt.datetime.now(dt.timezone.utc)
    store = FleetStore(fleet_dsn)
    store.migrate()
    drifting = store.write("f", latched_run(1, now - dt.timedelta(minutes=20), 300, 100))
    ahead = store.write("f", board_run(2, 1, now + dt.timedelta(days=2)))
    unset = store.write("f", board_run(3, 1, UNIX_EPOCH + dt.timedelta(days=1)))
    again = store.write("f", board_run(2, 2, now + dt.timedelta(days=2, hours=1)))
    store.close()
    assert drifting.events == [] and again.events == []  # said once a board
    (device, kind, detail), = ahead.events
    assert (device, kind) == (2, "gateway_clock_off") and "48.0 h ahead of the collector's clock" in detail
    (device, kind, detail), = unset.events
    assert (device, kind) == (3, "gateway_clock_off") and "stamped 1970-01-02" in detail
    view = FleetView(fleet_dsn)
    try:
        hours = view.alarm_map()
    finally:
        view.close()
    drift = P.ALARM_NAMES.index("DATA_DRIFT")
    assert hours[-1][0] <= now and hours[-1][1][drift] == 1  # the board drifting now, in the newest hour shown


def test_two_boards_under_one_id_are_said_once_and_both_kept(fleet_dsn):
    """Two simulated fleets with the same first id at once: every board's row counted both
    boards' frames, under the same sequence numbers, and nothing said so (trial 16). A frame
    name met again under another stamp is a shared id; a copy (the same stamp) is not."""
    now = dt.datetime.now(dt.timezone.utc)
    store = FleetStore(fleet_dsn)
    store.migrate()
    first = board_run(7, 1, now)
    copies = store.write("f", first)
    again = store.write("f", first)  # a redelivery: stored once, nothing said
    twin = store.write("f", board_run(7, 1, now + dt.timedelta(milliseconds=3)))
    more = store.write("f", board_run(7, 1, now + dt.timedelta(milliseconds=7)))
    other_fleet = store.write("g", board_run(7, 1, now))  # another fleet's board 7 is another board
    store.close()
    assert copies.events == again.events == more.events == other_fleet.events == []
    assert again.inserted == 0 and twin.inserted == len(first)  # both boards' frames kept
    (device, kind, detail), = twin.events
    assert (device, kind) == (7, "shared_id") and "two boards share this id" in detail


def test_a_store_of_schema_5_gets_its_boards_state_from_the_frames_it_holds(fleet_services, fleet_dsn):
    """Migration 6 fills each board's state, latches, wakes and the alarm roll-up from the
    frames already stored: the same as a collector of schema 6 folds in from the start."""
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=3)
    who = Identity(11, 1, bytes(8))
    detections = [Envelope(who, int((start + dt.timedelta(seconds=i)).timestamp() * 1e6), P.parse_packet(P.encode_packet(
        P.Detection(i, i + 1, who.model_id, 250, 240, P.DETECTION_FLAG_WAKE * (i % 2), 480 * (i + 1))))) for i in range(4)]
    runs = [detections, latched_run(2, start, 900, 450), board_run(7, 1, start, drifts=True), board_run(9, 2, start),
            board_run(0, 0, start, model=1, drifts=True, inferences=60) + board_run(0, 0, start + dt.timedelta(seconds=5),
                                                                                   model=2)]
    fresh_dsn = fleet_services[1].new_database("fresh")
    old = FleetStore(fleet_dsn)
    old.migrate(target=5)
    fresh = FleetStore(fresh_dsn)
    fresh.migrate()
    for run in runs:
        old.write("f", run)
        fresh.write("f", run)
    old.close()
    fresh.close()
    upgraded = FleetStore(fleet_dsn)
    assert upgraded.migrate() == 5
    upgraded.close()
    kept = ("SELECT device_id, boot_count, model_id, state_at, alarm_bits, accuracy, wakes, latch_index, latch_at, "
            "detector FROM devices ORDER BY device_id")
    hours = "SELECT * FROM alarm_hours ORDER BY 1, 2, 3, 4"
    with psycopg.connect(fleet_dsn) as a, psycopg.connect(fresh_dsn) as b:
        assert a.execute(kept).fetchall() == b.execute(kept).fetchall()
        assert a.execute(hours).fetchall() == b.execute(hours).fetchall()
        assert a.execute("SELECT count(*) FROM alarm_hours").fetchone()[0] > 0
        assert a.execute("SELECT sum(wakes) FROM devices").fetchone()[0] == 2
        # migration 7: the board that sent DETECTION frames is a detector, as a collector marks it
        assert a.execute("SELECT device_id FROM devices WHERE detector").fetchall() == [(11,)]


def test_a_wake_word_board_shows_its_wakes_not_an_accuracy_estimate(fleet_dsn):
    """A wake-word model's inferences are nearly all "not said": its share of confident ones
    barely moves when every wake is missed, so the dashboard showed a reassuring accuracy
    for a board that had gone deaf (trial 17, as the severity line did)."""
    from tinydrift.fleet.dashboard import WAKE_WORD, FleetView, device_page, overview_page

    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    who = Identity(12, 1, bytes(8))
    detections = [Envelope(who, int((start + dt.timedelta(seconds=i)).timestamp() * 1e6), P.parse_packet(P.encode_packet(
        P.Detection(i, i + 1, who.model_id, 20, 30, 0, 480 * (i + 1))))) for i in range(3)]
    store = FleetStore(fleet_dsn)
    store.migrate()
    store.write("f", board_run(12, 1, start) + detections)  # its monitor's frames and its detector's
    store.write("f", board_run(13, 1, start))  # a classifier
    store.close()
    view = FleetView(fleet_dsn)
    try:
        rows = {d.device_id: d for d in view.devices()}
    finally:
        view.close()
    assert rows[12].detector and not rows[13].detector and rows[12].accuracy is not None
    page = overview_page(list(rows.values()), []).decode()
    row = re.search(r"<tr[^>]*data-device='000000000000000c'.*?</tr>", page, re.S).group(0)
    assert f"<td class='accuracy'>{WAKE_WORD}</td>" in row and " %" not in row, row
    other = re.search(r"<tr[^>]*data-device='000000000000000d'.*?</tr>", page, re.S).group(0)
    assert re.search(r"<td class='accuracy'>[\d.]+ %</td>", other), other
    # its page draws its alarms but no accuracy line
    view = FleetView(fleet_dsn)
    try:
        pages = {d: device_page("f", d, view.timeline("f", d), [], [], view.wakes("f", d), view.is_detector("f", d))
                 for d in (12, 13)}
    finally:
        view.close()
    assert "<polyline" not in pages[12].decode() and WAKE_WORD in pages[12].decode()
    assert "<polyline" in pages[13].decode() and WAKE_WORD not in pages[13].decode()


def test_a_board_with_a_sensor_fault_shows_no_accuracy_estimate(fleet_dsn):
    """`report` withholds the estimate while SENSOR_FAULT is latched (the model hears no
    sound, so its confidence says nothing of its accuracy); the dashboard showed the device's
    raw figure instead. Its row now says withheld, and its timeline draws no point there."""
    from tinydrift.fleet.dashboard import WITHHELD, overview_page
    from tinydrift.monitor.config import ALARM_SENSOR_FAULT

    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    run = board_run(9, 1, start, inferences=40)
    for envelope in run[21:]:  # frames from the 21st on: the microphone died
        envelope.frame.alarm_bits, envelope.frame.alarm_index = ALARM_SENSOR_FAULT, 20
    store = FleetStore(fleet_dsn)
    store.migrate()
    store.write("f", run)
    store.close()
    view = FleetView(fleet_dsn)
    try:
        overview = overview_page(view.devices(), view.alarm_map()).decode()
        timeline = view.timeline("f", 9)
    finally:
        view.close()
    assert f"<td class='accuracy'>{WITHHELD}</td>" in overview
    page = device_page("f", 9, timeline, [], []).decode()
    drawn = sum(len(points.split()) for points in re.findall(r"<polyline[^>]*points='([^']*)'", page))
    healthy = sum(1 for row in timeline if row[3] is not None and not row[4] & ALARM_SENSOR_FAULT)
    assert 0 < healthy < len(timeline) and drawn == healthy


def test_a_dashboard_of_a_fleet_the_store_lacks_says_so(fleet_dsn):
    """`fleet serve --fleet nosuch` served an empty table and said nothing: a misspelt name
    looked like a fleet without devices. It now names the fleets the store holds, at start
    and on the page."""
    from click.testing import CliRunner

    from tinydrift.cli.main import main
    from tinydrift.fleet.dashboard import overview_page

    store = FleetStore(fleet_dsn)
    store.migrate()
    store.write("kws", board_run(3, 1, dt.datetime.now(dt.timezone.utc)))
    store.close()
    view = FleetView(fleet_dsn, "nosuch")
    try:
        page = overview_page(view.devices(), view.alarm_map(), "nosuch", view.fleets()).decode()
    finally:
        view.close()
    assert "No device of fleet nosuch yet (fleets there: kws)" in page
    import signal

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}  # fleet serve sets its own
    try:
        result = CliRunner().invoke(main, ["fleet", "serve", "--db", fleet_dsn, "--port", "0", "--fleet", "nosuch",
                                          "--duration", "0.5"])
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    assert result.exit_code == 0, result.output
    assert "fleet 'nosuch' has no device in the fleet store yet (fleets there: kws)" in result.output
