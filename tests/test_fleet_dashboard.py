"""The fleet dashboard in a real headless Chromium (Debian's): a drifting device shows as
drifting, with its alarm type and its fallen accuracy estimate; a quiet one as quiet; the
alarm map counts the drifting device; its timeline marks where the alarm latched."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import threading

import pytest

from tinydrift.fleet.dashboard import make_server
from tinydrift.fleet.envelope import Envelope, Identity
from tinydrift.fleet.simulate import SimulatedDevice
from tinydrift.fleet.store import FleetStore
from tinydrift.link import protocol as P
from tinydrift.monitor.config import ALARM_DATA_DRIFT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/setup.sh)")
QUIET, DRIFTING = 0x51, 0xD7
DRIFT_FROM = 60  # the drifting device's heartbeat at which DATA_DRIFT latches


def heartbeats(device_id: int, drifts: bool, boot_count: int = 1, minutes_ago: int = 100) -> list[Envelope]:
    """A device's HELLO and 100 heartbeats (one a minute, from `minutes_ago` on); the drifting
    one latches DATA_DRIFT at heartbeat DRIFT_FROM and its accuracy estimate falls from there."""
    board = SimulatedDevice(device_id, boot_count=boot_count, heartbeat_interval=10, heartbeat_only=True)
    frames = board.boot()
    while len(frames) < 101:
        frames += board.infer()
    who = Identity.of_hello(frames[0])
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=minutes_ago)
    out = []
    for i, frame in enumerate(frames):
        if drifts and isinstance(frame, P.Heartbeat) and i >= DRIFT_FROM:
            frame.alarm_bits, frame.alarm_index = ALARM_DATA_DRIFT, DRIFT_FROM * 10
            frame.atc = max(0, 240 - 4 * (i - DRIFT_FROM))
        packet = P.parse_packet(P.encode_packet(frame))
        out.append(Envelope(who, int((start + dt.timedelta(minutes=i)).timestamp() * 1e6), packet))
    return out


@pytest.fixture
def dashboard(fleet_dsn):
    store = FleetStore(fleet_dsn)
    store.migrate()
    store.write("kws", heartbeats(QUIET, drifts=False) + heartbeats(DRIFTING, drifts=True))
    store.close()
    server = make_server(fleet_dsn, port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def rendered(url: str, profile) -> str:
    """The DOM as Chromium renders it."""
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           f"--user-data-dir={profile}", "--dump-dom", url],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    return done.stdout


def row_of(dom: str, device_id: int) -> str:
    match = re.search(rf"<tr[^>]*data-device=\"{device_id:016x}\"[^>]*>.*?</tr>", dom, re.S)
    assert match, dom[:3000]
    return match.group(0)


def test_the_browser_shows_the_drifting_device_as_drifting(dashboard, tmp_path):
    dom = rendered(dashboard + "/", tmp_path / "profile")
    drifting, quiet = row_of(dom, DRIFTING), row_of(dom, QUIET)
    assert 'data-state="drifting"' in drifting and "DATA_DRIFT" in drifting
    assert 'data-state="quiet"' in quiet and "DATA_DRIFT" not in quiet
    accuracy = lambda row: float(re.search(r'class="accuracy">([\d.]+) %', row).group(1))  # noqa: E731
    assert accuracy(drifting) < 50 < accuracy(quiet)  # the last heartbeat's estimate: 240 - 4 * 40 = 80 / 256
    assert dom.index(f"{DRIFTING:016x}") < dom.index(f"{QUIET:016x}")  # drifting devices first
    assert "2 devices, 1 drifting." in dom
    # the alarm map: the hours since the drift show one device with DATA_DRIFT, none before
    cells = re.findall(r'<td class="map[^"]*" data-type="DATA_DRIFT"[^>]*>(\d+)</td>', dom)
    assert cells and set(cells) <= {"0", "1"} and cells[-1] == "1"

    device = rendered(f"{dashboard}/device/kws/{DRIFTING:016x}", tmp_path / "profile")
    assert re.search(r'<line class="alarm" data-type="DATA_DRIFT"', device)
    assert re.search(r"<td>DATA_DRIFT</td><td>[^<]+</td><td>600</td>", device)  # latched at inference 600
    assert "<polyline" in device
    quiet_page = rendered(f"{dashboard}/device/kws/{QUIET:016x}", tmp_path / "profile")
    assert "No alarm latched." in quiet_page


@pytest.mark.slow  # ~22 s: simulate -> store is test_fleet_simulate's, the drifting row in the browser the test above's
def test_the_browser_shows_a_simulated_drifting_device_as_drifting_and_a_quiet_one_as_quiet(fleet_dsn, tmp_path):
    """Devices of `tinydrift fleet simulate` (the monitor's twin on real model outputs, in
    heartbeat-only mode), a heartbeat a minute: the one whose microphone went 20 dB quieter
    after commissioning shows as drifting with DATA_DRIFT, a never-drifting one as quiet."""
    from test_fleet_simulate import fleet_of

    fleet = fleet_of(10, scenarios=("gain_down_20db",), drift_share=0.3, onset_within=50, per_inference=False,
                     heartbeat_interval=50, seed=2)
    frames = fleet.boot()
    for _ in range(600):
        for d, sent in enumerate(fleet.step()):
            frames[d] += sent
    plan, latched = fleet.plan, fleet.latched()
    drifting = next(d for d in range(fleet.n) if plan.scenario_of(d) and latched[d] == ALARM_DATA_DRIFT)
    quiet = next(d for d in range(fleet.n) if not plan.scenario_of(d) and frames[d][-1].alarm_bits == 0)
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=len(frames[0]))
    envelopes = []
    for d in (drifting, quiet):
        who = Identity.of_hello(frames[d][0])
        for i, frame in enumerate(frames[d]):
            at = int((start + dt.timedelta(minutes=i)).timestamp() * 1e6)
            envelopes.append(Envelope(who, at, P.parse_packet(P.encode_packet(frame))))
    store = FleetStore(fleet_dsn)
    store.migrate()
    store.write("simulated", envelopes)
    store.close()
    server = make_server(fleet_dsn, port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        dom = rendered(url + "/", tmp_path / "profile")
        ids = plan.device_ids
        drifting_row, quiet_row = row_of(dom, ids[drifting]), row_of(dom, ids[quiet])
        assert 'data-state="drifting"' in drifting_row and "DATA_DRIFT" in drifting_row
        assert 'data-state="quiet"' in quiet_row and "DATA_DRIFT" not in quiet_row
        assert "2 devices, 1 drifting." in dom
        page = rendered(f"{url}/device/simulated/{ids[drifting]:016x}", tmp_path / "profile")
        latched_at = int(fleet.alarm_index()[drifting])
        assert latched_at > plan.onset[drifting] and re.search(rf"<td>DATA_DRIFT</td><td>[^<]+</td><td>{latched_at}</td>",
                                                               page)
    finally:
        server.shutdown()
        server.server_close()


def test_a_dashboard_of_one_fleet_shows_no_device_page_of_another(fleet_dsn, dashboard):
    """`fleet serve --fleet other` listed none of fleet kws's devices but still served their pages."""
    import urllib.error
    import urllib.request

    pages = {}
    for fleet in ("kws", "other"):
        server = make_server(fleet_dsn, port=0, fleet=fleet)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        thread.start()
        try:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/device/kws/{DRIFTING:x}",
                                            timeout=10) as page:
                    pages[fleet] = page.status
            except urllib.error.HTTPError as refused:
                pages[fleet] = refused.code
                assert (f"No device {DRIFTING:016x} of fleet kws in the fleet store (this dashboard shows fleet "
                        "other)") in refused.read().decode()
        finally:
            server.shutdown()
            server.server_close()
    assert pages == {"kws": 200, "other": 404}


def test_device_pages_take_any_hex_id_and_an_unknown_device_is_not_found(dashboard):
    """/device/kws/d7 and /device/kws/00000000000000D7 are the drifting device's page as much as
    its 16 lower-case digits; a device the store has never heard of, the id in a fleet that
    does not have it, or a path without the fleet is a 404, not an empty page."""
    import urllib.error
    import urllib.request

    for spelled in (f"{DRIFTING:016x}", f"{DRIFTING:x}", f"{DRIFTING:016X}"):
        with urllib.request.urlopen(f"{dashboard}/device/kws/{spelled}", timeout=10) as page:
            assert page.status == 200 and f"{DRIFTING:016x}" in page.read().decode()
    for missing, says in (("kws/1", "No device 0000000000000001 of fleet kws in the fleet store"),
                          ("lab/d7", "No device 00000000000000d7 of fleet lab"), ("kws/12345678901234567", None),
                          ("kws/xyz", None), ("d7", None), ("k%20s/d7", None)):
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(f"{dashboard}/device/{missing}", timeout=10)
        assert raised.value.code == 404
        if says:
            assert says in raised.value.read().decode()


def test_a_device_whose_alarm_a_reboot_cleared_shows_it_until_a_day_has_passed(fleet_dsn, tmp_path):
    """A reboot clears the latched alarms: a board that drifted and then restarted sent quiet
    heartbeats, and the overview called it quiet, though its drift had not gone (its kept
    reference finds it again only after the usual delay). It now reads "cleared", with the
    types, after the drifting boards and before the quiet ones, for a day after the alarm.
    Builds without an id (device 0, any board) never read cleared (test_fleet_store)."""
    store = FleetStore(fleet_dsn)
    store.migrate()
    rebooted, long_ago = 0x3C, 0x3D  # the second latched 25-26 h ago
    store.write("kws", heartbeats(QUIET, drifts=False) + heartbeats(DRIFTING, drifts=True)
                + heartbeats(rebooted, drifts=True, minutes_ago=220) + heartbeats(rebooted, False, 2, minutes_ago=110)
                + heartbeats(long_ago, drifts=True, minutes_ago=1600) + heartbeats(long_ago, False, 2, minutes_ago=100))
    store.close()
    server = make_server(fleet_dsn, port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        dom = rendered(f"http://127.0.0.1:{server.server_address[1]}/", tmp_path / "profile")
    finally:
        server.shutdown()
        server.server_close()
    row = row_of(dom, rebooted)
    assert 'data-state="cleared"' in row and re.search(r'class="alarms">- \(cleared: DATA_DRIFT\)</td>', row), row
    assert 'data-state="quiet"' in row_of(dom, QUIET) and "cleared" not in row_of(dom, QUIET)
    assert 'data-state="drifting"' in row_of(dom, DRIFTING) and "cleared" not in row_of(dom, DRIFTING)
    assert dom.index(f"{DRIFTING:016x}") < dom.index(f"{rebooted:016x}") < dom.index(f"{QUIET:016x}")
    assert 'data-state="quiet"' in row_of(dom, long_ago) and "cleared" not in row_of(dom, long_ago)
    assert "4 devices, 1 drifting. 1 cleared: an alarm latched in the last 24 h" in dom
