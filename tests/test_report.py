"""report: PNGs and an HTML page from a capture database made by a real capture of a
simulated drifting device; bad databases are refused with a clear message."""

from __future__ import annotations

import dataclasses
import html

import json
import random
import re
import sqlite3
import struct
import zlib
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from click.testing import CliRunner

from tinydrift.link import protocol as P
from tinydrift.logbook.capture import capture
from tinydrift.cli.main import main
from tinydrift.logbook.report import REPORT_FILES, _alarm_onsets, _mark_alarms, write_report
from tinydrift.errors import TinydriftError

from test_capture import MODEL_HASH, TcpDevice

Q12 = 1 << 12
DRIFT_AT = 700
N_INFERENCES = 1200


def drifting_device_stream(seed: int = 41, hello: bool = True, status: bool = False) -> tuple[bytes, dict]:
    """A device whose input drifts at inference 700: the mean-shift CUSUM climbs through its
    warning (4 σ) and drift (8 σ) levels, ATC and confidence fall, entropy rises. A few
    frames are lost or corrupted on the way. Without `hello`, its boot was not captured; with
    `status`, a STATUS (protocol 5: with the HELLO in it) came first, as capture asks for one."""
    rng = random.Random(seed)
    warning = (4 * Q12,) * 5 + (0,) * 3
    drift = (8 * Q12,) * 5 + (0,) * 3
    said = P.Hello(0, MODEL_HASH, 1, 2, 3, 412, 12, 40, 12, 5, warning, drift)
    pieces = [b"boot: tinydrift demo\n", P.encode(said)]
    if not hello:
        del pieces[1]
    if status:
        pieces.append(P.encode(P.Status(0, 60_000, 412, 0, 1, 0, MODEL_HASH, 0, 0, said)))
    cusum, latched, change = 0, 0, 0
    facts = {"lost": 0, "corrupt": 0, "first_alarm": None}
    for t in range(1, N_INFERENCES + 1):
        drifting = t >= DRIFT_AT
        cusum = max(0, cusum + (rng.randrange(300, 900) if drifting else rng.randrange(-900, 600)))
        others = [max(0, int(rng.gauss(1.0, 0.5) * Q12)) for _ in range(4)]
        scores = (cusum, *others, 0, 0, 0)
        bits = 0
        if cusum >= warning[0]:
            bits |= 1 << P.WARNING_SHIFT
        if cusum >= drift[0] and not latched:
            latched, change = 1, DRIFT_AT
            facts["first_alarm"] = t
        bits |= latched
        confidence = rng.randrange(150, 230) if drifting else rng.randrange(200, 256)
        atc = int((0.75 if drifting else 0.93) * 65536) + rng.randrange(-1500, 1500)
        entropy = int((0.9 if drifting else 0.35) * 65536) + rng.randrange(-6000, 6000)
        frame = P.Inference(t, t, MODEL_HASH[:8], rng.randrange(12), confidence, bits, entropy, atc,
                            (1 << 3) | (1 << 17) if latched else 0, change if latched else 0, scores)
        wire = P.encode(frame)
        if t % 97 == 0:
            facts["lost"] += 1
            continue
        if t % 211 == 0:
            wire = wire[:30] + bytes([wire[30] ^ 0x04]) + wire[31:]
            facts["corrupt"] += 1
            facts["lost"] += 1
        pieces.append(wire)
    pieces.append(P.encode(P.Bye(N_INFERENCES + 1, 0, N_INFERENCES)))
    return b"".join(pieces), facts


def make_drift_db(folder: Path, hello: bool = True, status: bool = False) -> tuple[Path, dict]:
    stream, facts = drifting_device_stream(hello=hello, status=status)
    device = TcpDevice(lambda conn: conn.sendall(stream))
    db = folder / "drift.db"
    capture(device.url, db)
    return db, facts


def _png_ok(path: Path) -> tuple[int, int]:
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", raw[8:16])
    assert kind == b"IHDR"
    width, height = struct.unpack(">II", raw[16:24])
    assert zlib.crc32(raw[12:16 + length]) == struct.unpack(">I", raw[16 + length:20 + length])[0]
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (height, width) and float(np.std(pixels)) > 0.01  # not blank
    return width, height


def test_report_writes_valid_pngs_and_a_page_that_embeds_them(tmp_path):
    db, facts = make_drift_db(tmp_path)
    out = tmp_path / "report"
    result = write_report(db, out)

    names = sorted(p.name for p in result.files)
    assert names == ["atc.png", "confidence.png", "index.html", "scores.png"]
    for png in out.glob("*.png"):
        width, height = _png_ok(png)
        assert width >= 800 and height >= 300
    page = (out / "index.html").read_text()
    assert set(re.findall(r'<img src="([^"]+)"', page)) == {"scores.png", "atc.png", "confidence.png"}
    frames = N_INFERENCES + 2 - facts["lost"]
    assert f"<th>frames</th><td>{frames}</td>" in page
    assert f"<th>lost frames (sequence gaps)</th><td>{facts['lost']}</td>" in page
    assert f"<th>corrupt frames</th><td>{facts['corrupt']}</td>" in page
    first = facts["first_alarm"]
    assert f"inference {first}: DATA_DRIFT (estimated change point {DRIFT_AT})" in page
    assert "device HELLO" in page and "1.2.3" in page
    assert result.summary.first_alarm == (first, ["DATA_DRIFT"])


def write_reference(folder: Path, model_hash: str, warning: int = 4 * Q12, drift: int = 8 * Q12) -> None:
    """A model folder's reference.json: the shipped keyword model's monitor config (the report
    checks it as the firmware would) with the levels the device announces (those of
    drifting_device_stream's HELLO, by default)."""
    from tinydrift.firmware import REPO_ROOT

    config = json.loads((REPO_ROOT / "models" / "kws" / "reference.json").read_text())["monitor_config"]
    config.update(score_warning=[warning] * 5, score_drift=[drift] * 5)
    labels = [f"class{k}" for k in range(len(config["prior_q16"]))]
    (folder / "reference.json").write_text(json.dumps({"name": "m", "model_hash": model_hash, "labels": labels,
                                                       "monitor_config": config}))


def test_thresholds_from_the_model_dir_take_precedence(tmp_path):
    db, _ = make_drift_db(tmp_path)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    write_reference(model_dir, MODEL_HASH.hex())
    write_report(db, tmp_path / "r", model_dir=model_dir)
    page = (tmp_path / "r" / "index.html").read_text()
    assert f"model dir {model_dir}" in page
    # the folder names the summary channels the alarm's frame marks as moved (bits 3 and 17)
    assert "<th>input channels moved at the first alarm</th><td>band 3, band 17</td>" in page
    # a config the firmware and `fleet simulate` refuse is refused here too, not shown as if sound
    reference = json.loads((model_dir / "reference.json").read_text())
    reference["monitor_config"]["score_drift"] = [1]
    (model_dir / "reference.json").write_text(json.dumps(reference))
    with pytest.raises(TinydriftError, match="reference.json: monitor_config is not usable"):
        write_report(db, tmp_path / "r2", model_dir=model_dir)
    assert not (tmp_path / "r2").exists()


def test_a_model_folder_calibrated_otherwise_than_the_device_is_refused(tmp_path):
    """A wake-word model's hash leaves out its monitor (calibrated apart, into the same
    folder): a folder calibrated again once had its levels plotted over a device that ran
    others, 3-4 times apart, exit 0. The levels the device's HELLO announced tell."""
    db, _ = make_drift_db(tmp_path)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    write_reference(model_dir, MODEL_HASH.hex(), warning=12 * Q12, drift=30 * Q12)
    with pytest.raises(TinydriftError, match="with other drift levels than .*model's monitor config"):
        write_report(db, tmp_path / "r", model_dir=model_dir)
    assert not (tmp_path / "r").exists()


def test_report_command_ends_with_a_one_line_summary(tmp_path):
    db, facts = make_drift_db(tmp_path)
    result = CliRunner().invoke(main, ["report", str(db), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("report ") and f"first alarm at inference {facts['first_alarm']} (DATA_DRIFT)" in last
    # severity from impact: the device's estimate before the change point (0.93) and at the end (0.75)
    assert re.search(r"estimated accuracy 9[23]\.\d % before the change \(change point ~inference 700\), "
                     r"7[45]\.\d % now \(the device's running ATC; estimated impact: -1[78]\.\d points\)", last), last
    page = (tmp_path / "out" / "index.html").read_text()
    assert f"<th>alarm DATA_DRIFT</th><td>DATA_DRIFT latched at inference {facts['first_alarm']}; estimated" in page


def test_a_capture_without_inferences_still_gets_a_page(tmp_path):
    device = TcpDevice(lambda conn: conn.sendall(b"just text\n" + P.encode(P.Bye(0, 1, 0))))
    db = tmp_path / "empty.db"
    capture(device.url, db)
    result = write_report(db, tmp_path / "r")
    assert [p.name for p in result.files] == ["index.html"]
    assert "nothing to plot" in (tmp_path / "r" / "index.html").read_text()


def test_unreadable_databases_are_refused_clearly(tmp_path):
    with pytest.raises(TinydriftError, match="not found"):
        write_report(tmp_path / "missing.db", tmp_path / "r")
    text = tmp_path / "notes.db"
    text.write_text("not sqlite at all " * 100)
    with pytest.raises(TinydriftError, match="not a tinydrift capture database"):
        write_report(text, tmp_path / "r")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(TinydriftError, match="not a tinydrift capture database"):
        write_report(other, tmp_path / "r")


def test_a_database_edited_by_hand_is_refused_clearly(tmp_path):
    """A capture whose confidence column someone set to text ended the report in a numpy
    ValueError traceback; it is refused in one line, and no page is written."""
    db, _ = make_drift_db(tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE frames SET confidence='abc' WHERE id % 50 = 0 AND type = 2")
    with pytest.raises(TinydriftError, match="holds a value that is not a number .* changed outside tinydrift"):
        write_report(db, tmp_path / "r")
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_a_model_folder_of_another_model_is_refused(tmp_path):
    """Thresholds and labels of another model would mislabel every plot: refused, in one line."""
    db, _ = make_drift_db(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    write_reference(other, "ab" * 32)
    with pytest.raises(TinydriftError, match="runs model"):
        write_report(db, tmp_path / "r", model_dir=other)
    assert not (tmp_path / "r" / "index.html").exists()
    for args in (["report", str(db), "--out", str(tmp_path / "r2"), "--model-dir", str(other)],
                 ["monitor", "--db", str(db), "--once", "--model-dir", str(other)]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1 and "runs model" in result.output and "Traceback" not in result.output


def test_truth_marks_the_shift_the_delay_and_the_true_accuracy_beside_the_estimate(tmp_path):
    """With the stream's truth, the page says where the shift was, how late the alarm came,
    and the accuracy before and after, true and as the device estimated it."""
    from tinydrift.logbook.report import Truth
    from tinydrift.logbook.store import open_db, read_inferences

    db, facts = make_drift_db(tmp_path)
    seen = read_inferences(open_db(db))
    labels = np.full(N_INFERENCES, -1, dtype=np.int64)  # lost frames: no label needed
    for index, predicted in zip(seen["inference_index"], seen["predicted_class"]):
        # right before the shift, wrong from it on
        labels[index - 1] = predicted if index < DRIFT_AT else (predicted + 1) % 12
    truth_file = tmp_path / "truth.json"
    truth_file.write_text(Truth(DRIFT_AT, labels).to_json())

    result = CliRunner().invoke(main, ["report", str(db), "--out", str(tmp_path / "r"), "--truth", str(truth_file)])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r" / "index.html").read_text()
    assert f"<th>true shift</th><td>inference {DRIFT_AT}</td>" in page
    assert f"<th>first alarm after the shift</th><td>{facts['first_alarm'] - DRIFT_AT + 1} inferences</td>" in page
    running = r"true ([\d.]+) %, the device&#x27;s running ATC ([\d.]+) % \(averaged\)"
    before = re.search(rf"<th>accuracy before the shift</th><td>{running}", page)
    after = re.search(rf"<th>accuracy after the shift</th><td>{running}", page)
    assert before and after and float(before.group(1)) == 100.0 and float(after.group(1)) == 0.0, page
    # the device's running estimate, from its frames: ~93 % before, ~75 % after (drifting_device_stream)
    assert abs(float(before.group(2)) - 93) < 2 and abs(float(after.group(2)) - 75) < 2
    # Given the model folder, the estimate over the same inferences as the truth, made as the
    # severity line makes it: a trial's page gave the running ATC's 91.6 % under the same name
    # as the severity line's 27.1 % (true: 25 %). The stream's confidence is 200-255 before
    # the shift and 150-229 after, against the folder's ATC level.
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    write_reference(model_dir, MODEL_HASH.hex())
    level = json.loads((model_dir / "reference.json").read_text())["monitor_config"]["atc_threshold"]
    result = CliRunner().invoke(main, ["report", str(db), "--out", str(tmp_path / "m"), "--truth", str(truth_file),
                                       "--model-dir", str(model_dir)])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "m" / "index.html").read_text()
    estimate = r"true ([\d.]+) %, estimated accuracy ([\d.]+) % \(([^)]*)\)"
    before = re.search(rf"<th>accuracy before the shift</th><td>{estimate}", page)
    after = re.search(rf"<th>accuracy after the shift</th><td>{estimate}", page)
    assert before and after, page
    assert float(before.group(2)) == 100.0 and before.group(3) == "ATC"
    assert abs(float(after.group(2)) - 100 * (230 - level) / 80) < 6, (after.group(0), level)
    _png_ok(tmp_path / "r" / "atc.png")
    # the same figures for a caller (the demo prints them)
    from tinydrift.logbook.report import write_report

    assert write_report(db, tmp_path / "r2", truth=Truth(DRIFT_AT, labels)).true_accuracy == {"before": 1.0, "after": 0.0}


def test_the_truth_stands_beside_the_severity_line_over_its_own_spans(tmp_path):
    """With --truth, the page compared the truth with the device's mean ATC after the shift
    only, and the printed line gave no truth at all: the severity line's figures (ATC before
    the change point, the estimate over the answers since the alarm) stood alone. The demo's
    capture: "77.4 % now (...)" where the truth over the same 423 answers was 77.1 %."""
    from tinydrift.logbook.report import Truth

    db, facts = make_drift_db(tmp_path)
    seen = read_inferences_of(db)
    labels = np.full(N_INFERENCES, -1, dtype=np.int64)
    for index, predicted in zip(seen["inference_index"], seen["predicted_class"]):
        # right before the change point, wrong on one in four of the answers since the alarm
        wrong = index > facts["first_alarm"] and index % 4 == 0
        labels[index - 1] = (predicted + 1) % 12 if wrong else predicted
    truth_file = tmp_path / "truth.json"
    truth_file.write_text(Truth(DRIFT_AT, labels).to_json())
    result = CliRunner().invoke(main, ["report", str(db), "--out", str(tmp_path / "r"), "--truth", str(truth_file)])
    assert result.exit_code == 0, result.output
    since = seen["inference_index"] > facts["first_alarm"]
    expected = 100 * np.mean(seen["inference_index"][since] % 4 != 0)
    text = f"true accuracy 100.0 % before the estimated change point, {expected:.1f} % since the alarm"
    last = result.stdout.strip().splitlines()[-1]
    assert last.endswith(f"points); {text}"), last
    page = (tmp_path / "r" / "index.html").read_text()
    assert f"<th>true accuracy beside the severity line</th><td>{text[len('true accuracy '):]}</td>" in page


def read_inferences_of(db: Path) -> dict:
    from tinydrift.logbook.store import open_db, read_inferences

    return read_inferences(open_db(db))


@pytest.mark.parametrize("content, named", [
    ('{"shift_index": -3}', "truth file"), ("not json", "truth file"), ('{"labels": "abc"}', "truth file"),
    ("[1, 2]", "truth file"), ('{"shift_index": true}', "truth file"), ('{"labels": [1.5, 2]}', "truth file"),
    ('{"labels": [3, -2]}', "truth file"),
    # well formed, but not this capture's: 1,200 inferences of a 12-class model
    ('{"shift_index": 99999999}', "shift_index 99999999 is after the capture's last inference (1200)"),
    ('{"labels": [3, 99, -1]}', "label 99 is not a class of the captured model (0-11)"),
    ("[]", "a JSON list, not an object"),
    ('{"labels": [3, 0, 1]}', "labels for 3 inferences, and the capture holds 1200")])
def test_a_bad_truth_file_is_refused_in_one_line(tmp_path, content, named):
    db, _ = make_drift_db(tmp_path)
    bad = tmp_path / "truth.json"
    bad.write_text(content)
    result = CliRunner().invoke(main, ["report", str(db), "--out", str(tmp_path / "r"), "--truth", str(bad)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert named in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_truth_labels_are_checked_without_a_hello_frame(tmp_path):
    """A capture begun after the device's boot has no HELLO to give the class count: a label
    beyond the model's classes was once counted as a wrong prediction on every inference it
    labelled (true accuracy 0 %, exit 0). The model folder gives the count; without one, only
    the classes the device predicted (here all 12) are surely its model's."""
    db, _ = make_drift_db(tmp_path, hello=False)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    write_reference(model_dir, MODEL_HASH.hex())
    truth = tmp_path / "truth.json"
    for label, model_args, named in (
            (99, [], "label 99 is beyond the classes the device predicted (0-11), and the capture has no HELLO frame"),
            (12, ["--model-dir", str(model_dir)], "label 12 is not a class of the captured model (0-11)")):
        truth.write_text(json.dumps({"labels": [label] * N_INFERENCES}))
        result = CliRunner().invoke(main, ["report", str(db), "--out", str(tmp_path / "r"), "--truth", str(truth),
                                           *model_args])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert named in result.output and len(result.output.strip().splitlines()) == 1, result.output
        assert not (tmp_path / "r").exists()
    truth.write_text(json.dumps({"labels": [11] * N_INFERENCES}))
    result = CliRunner().invoke(main, ["report", str(db), "--out", str(tmp_path / "r"), "--truth", str(truth)])
    assert result.exit_code == 0, result.output


def test_a_capture_begun_after_the_boot_reads_the_device_from_its_status(tmp_path):
    """Without the HELLO (sent at boot), a report had no thresholds ("none known"), no
    firmware version and no class count unless given the model folder. Capture asks for a
    STATUS on connecting, and from protocol 5 a STATUS carries the HELLO: the report reads
    the device from it, and says where its levels came from."""
    db, facts = make_drift_db(tmp_path, hello=False, status=True)
    result = write_report(db, tmp_path / "r")
    page = (tmp_path / "r" / "index.html").read_text()
    assert "device STATUS (the capture began after its boot)" in page and "1.2.3" in page, page
    assert "<th>device</th><td>no id (its port defines no td_port_device_id), boot count unknown" in page
    assert "none known" not in page and "no HELLO received" not in page
    assert result.summary.first_alarm == (facts["first_alarm"], ["DATA_DRIFT"])
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps({"labels": [12] * N_INFERENCES}))
    refused = CliRunner().invoke(main, ["report", str(db), "--out", str(tmp_path / "r2"), "--truth", str(truth)])
    assert refused.exit_code == 1 and "label 12 is not a class of the captured model (0-11)" in refused.output, \
        refused.output
    # A capture begun at the boot holds the HELLO, then the STATUS it asked for, which says
    # the same: that report was once said to come from a capture "begun after its boot".
    (tmp_path / "boot").mkdir()
    db, _ = make_drift_db(tmp_path / "boot", hello=True, status=True)
    write_report(db, tmp_path / "r3")
    page = (tmp_path / "r3" / "index.html").read_text()
    assert "device HELLO" in page and "began after its boot" not in page


def test_a_truth_for_a_detector_capture_is_refused_and_its_plot_not_left_to_the_next_report(tmp_path):
    """A wake-word detector's capture (DETECTION frames, no INFERENCE frames) took any truth
    file without a check: "true shift: inference 99999" on the page, class 7 of a binary
    detector taken. There is no class per inference to hold a truth against. A keyword
    capture's report into the folder afterwards left the detector's plot beside its own."""
    frames = [P.Detection(seq, seq, MODEL_HASH[:8], 230 if seq == 3 else 20, 100,
                          P.DETECTION_FLAG_WAKE if seq == 3 else 0, 480 * seq) for seq in range(1, 6)]
    device = TcpDevice(lambda conn: conn.sendall(b"".join(P.encode(f) for f in frames)))
    capture(device.url, tmp_path / "wake.db", reconnect_timeout=0)
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps({"shift_index": 99999, "labels": [7] * 5}))
    result = CliRunner().invoke(main, ["report", str(tmp_path / "wake.db"), "--out", str(tmp_path / "r"),
                                       "--truth", str(truth)])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert "the capture holds no INFERENCE frames" in result.output and not (tmp_path / "r").exists()
    assert CliRunner().invoke(main, ["report", str(tmp_path / "wake.db"), "--out", str(tmp_path / "r")]).exit_code == 0
    # a classifier's report into the same folder: the detector's plot is not left beside it
    assert (tmp_path / "r" / "detections.png").exists()
    db, _ = make_drift_db(tmp_path)
    result = write_report(db, tmp_path / "r")
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == sorted(f.name for f in result.files)
    assert {f.name for f in result.files} | {"detections.png"} <= REPORT_FILES  # the list it cleans by is whole
    assert "detections.png" not in {f.name for f in result.files}


def test_a_device_without_a_monitor_is_reported_as_one_not_as_quiet(tmp_path):
    """A wake-word build exported without a calibrated monitor (HELLO: no monitor state):
    its report said "no alarm" and "thresholds from device HELLO", as if its drift were
    watched. It now says no alarm can come, and how to get a monitor; `monitor` too."""
    bare = P.Hello(0, MODEL_HASH, 0, 1, 0, 0, 1, 0, 12, 0, (0,) * 8, (0,) * 8)
    frames = [bare] + [P.Detection(seq, seq, MODEL_HASH[:8], 20, 30, 0, 480 * seq) for seq in range(1, 40)]
    one_wake = dataclasses.replace(frames[5], flags=P.DETECTION_FLAG_WAKE)
    woke = [frames[0], *frames[1:5], one_wake, *frames[6:]]
    device = TcpDevice(lambda conn: conn.sendall(b"".join(P.encode(f) for f in frames)))
    capture(device.url, tmp_path / "bare.db", reconnect_timeout=0)
    result = CliRunner().invoke(main, ["report", str(tmp_path / "bare.db"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "no alarm (no drift monitor on this device" in result.output
    assert "39 detector frames with 0 wakes" in result.output, result.output
    page = (tmp_path / "r" / "index.html").read_text()
    assert "none: the device runs no drift monitor" in page and "tinydrift wakeword calibrate" in page
    shown = CliRunner().invoke(main, ["monitor", "--db", str(tmp_path / "bare.db"), "--once"])
    assert shown.exit_code == 0 and "no drift monitor on this device" in " ".join(shown.output.split()), shown.output
    device = TcpDevice(lambda conn: conn.sendall(b"".join(P.encode(f) for f in woke)))
    capture(device.url, tmp_path / "woke.db", reconnect_timeout=0)
    result = CliRunner().invoke(main, ["report", str(tmp_path / "woke.db"), "--out", str(tmp_path / "r2")])
    assert "39 detector frames with 1 wake" in result.output and "1 wakes" not in result.output, result.output


def test_lines_break_where_frames_were_lost():
    from tinydrift.logbook.report import _broken_at_gaps

    x, y = _broken_at_gaps(np.array([1, 2, 3, 5, 6, 9]), np.array([10, 20, 30, 50, 60, 90]))
    assert np.array_equal(x, [1, 2, 3, np.nan, 5, 6, np.nan, 9], equal_nan=True)
    assert np.array_equal(y, [10, 20, 30, np.nan, 50, 60, np.nan, 90], equal_nan=True)


def test_severity_calls_a_shift_harmless_only_when_the_estimate_barely_moved():
    from tinydrift.logbook.store import alarm_severity

    n = 400
    index = np.arange(1, n + 1)
    bits = np.where(index >= 300, 1, 0) | np.where(index >= 350, 1 << 2, 0)  # DATA_DRIFT, then LABEL_SHIFT
    data = {"inference_index": index, "alarm_bits": bits, "alarm_index": np.where(index >= 300, 300, 0),
            "change_index": np.where(index >= 300, 250, 0),
            "atc": (np.where(index < 250, 0.930, 0.921) * 65536).astype(np.int64)}
    first, second = alarm_severity(data)
    assert (first.name, first.latched_at, first.change_index) == ("DATA_DRIFT", 300, 250)
    assert second.name == "LABEL_SHIFT" and second.latched_at == 350
    assert abs(first.impact_points - (-0.9)) < 0.05 and "harmless so far: -0.9 points" in first.line()
    data["atc"] = (np.where(index < 250, 0.930, 0.80) * 65536).astype(np.int64)
    assert "estimated impact: -13.0 points" in alarm_severity(data)[0].line()




def test_an_error_rate_alarm_s_line_gives_its_labels_not_the_label_free_estimate():
    """Labels remapped (concept drift) leave the inputs and the confidence as they were: an
    ERROR_RATE alarm read "harmless so far: -0.2 points" while half the labels disagreed
    (trial 19). Its line gives the labels the run's device took from the change point on."""
    from tinydrift.logbook.store import alarm_severity

    n = 500
    index = np.arange(1, n + 1)
    data = {"id": index, "received_at": index.astype(float), "inference_index": index,
            "alarm_bits": np.where(index >= 380, 1 << 3, 0), "alarm_index": np.where(index >= 380, 380, 0),
            "change_index": np.where(index >= 380, 345, 0), "atc": np.full(n, int(0.96 * 65536)),
            "predicted_class": index % 4, "confidence": np.full(n, 250)}
    # a label every 3rd inference; from 301 on, every other one disagrees with the answer
    labels = [{"inference_index": int(i), "label": int(i % 4 if i < 301 or i % 2 else (i + 1) % 4),
               "state": "taken", "answered_at": float(i) + 0.5} for i in index[::3]]
    labels.append({"inference_index": 400, "label": 0, "state": "refused", "answered_at": 400.5})
    (alarm,) = alarm_severity(data, labels=labels)
    mine = [row for row in labels if row["state"] == "taken" and row["inference_index"] >= 345]
    wrong = sum(row["label"] != row["inference_index"] % 4 for row in mine)
    assert wrong and alarm.labels.taken == len(mine) and alarm.labels.wrong == wrong
    line = alarm.line()
    assert f"the labels taken from inference 345 on: {wrong} of {len(mine)} disagreed with the model" in line, line
    assert "harmless" not in line and "96.0 % before" in line
    # without labels in the capture (sent with `label --port`), it says so, and no verdict
    (bare,) = alarm_severity(data, labels=[])
    assert "no label in this capture from inference 345 on" in bare.line() and "harmless" not in bare.line()

def _alarm_at_300(n: int) -> dict:
    """Frames 1..n of a device whose DATA_DRIFT latched at inference 300 (change point 250):
    its running ATC 0.93 before the change, 0.80 after; of the answers after the alarm, all
    but every 10th are confident (ATC level 200 of 0-255), spread over 5 classes as the
    reference mix is."""
    index = np.arange(1, n + 1)
    return {"inference_index": index, "alarm_bits": np.where(index >= 300, 1, 0),
            "alarm_index": np.where(index >= 300, 300, 0), "change_index": np.where(index >= 300, 250, 0),
            "atc": (np.where(index < 250, 0.93, 0.80) * 65536).astype(np.int64), "predicted_class": index % 5,
            "confidence": np.where(index % 10 == 0, 150, 250)}


def test_a_wake_word_detector_s_severity_is_its_wakes_not_an_accuracy():
    """A wake-word model's inferences are nearly all "not said": noise that lost every wake
    after the change read "harmless so far: -1.0 points", a harmless gain "estimated impact:
    -2.2" (trial 17). Its line gives its wakes before the change point and since the alarm,
    and no verdict; each run's wakes its own."""
    from tinydrift.logbook.store import alarm_severity

    data = _alarm_at_300(400)
    data["id"] = np.arange(1, 401) * 2  # DETECTION frames come between the INFERENCE frames
    wake_at = np.array([40, 120, 200, 240, 330])  # four before the change point (250), one after the alarm
    detections = {"id": np.arange(1, 401) * 2 + 1, "inference_index": np.arange(1, 401),
                  "wake": np.isin(np.arange(1, 401), wake_at)}
    (line,) = alarm_severity(data, np.full(5, 0.2), 200, detections)
    assert line.verdict is None and line.wakes is not None
    text = line.line()
    assert "4 wakes in the 0.1 min before the change point, 1 wake in the 0.1 min since the alarm" in text, text
    assert "no accuracy is estimated for a wake-word detector" in text
    assert "harmless" not in text and "estimated impact" not in text and "% now" not in text
    # a classifier's capture (no DETECTION frame) keeps its accuracy estimate
    (classifier,) = alarm_severity(data, np.full(5, 0.2), 200, {k: v[:0] for k, v in detections.items()})
    assert classifier.wakes is None and "% now" in classifier.line()
    # two runs: the second run's wakes are not the first's
    twice = {k: np.concatenate([v, v]) for k, v in data.items()}
    twice["id"] = np.concatenate([data["id"], data["id"] + 1000])
    both = {"id": np.concatenate([detections["id"], detections["id"] + 1000]),
            "inference_index": np.concatenate([detections["inference_index"]] * 2),
            "wake": np.concatenate([detections["wake"], np.zeros(400, bool)])}
    first, second = alarm_severity(twice, np.full(5, 0.2), 200, both)
    assert (first.wakes.before, first.wakes.since) == (4, 1) and (second.wakes.before, second.wakes.since) == (0, 0)


def test_a_severity_line_says_which_figure_now_is():
    """The line without the model folder (the device's running ATC, which still carries the
    stretch that set the alarm off) and the one with it (the estimate over the answers since
    the alarm) read 82.3 % and 77.4 % on the demo's capture, each "% now (estimated impact: ...)":
    nothing told the reader why `report` and `monitor` disagreed, or which one to believe."""
    from tinydrift.logbook.store import alarm_severity

    data, prior = _alarm_at_300(400), np.full(5, 0.2)
    (running,) = alarm_severity(data)
    assert "80.0 % now (the device's running ATC; estimated impact: -13.0 points)" in running.line()
    (since,) = alarm_severity(data, prior, atc_threshold=200)
    assert abs(since.accuracy_now - 0.9) < 1e-9 and since.answers == 100
    # with how far 100 answers alone can put it either way (95 %): a few points on 64-100
    # answers are within what chance gives (trial 15's quieter room, read as a loss), and
    # the line does not call them an impact
    assert ("90.0 % now (ATC over the 100 answers since the alarm; too few answers to tell from none yet: "
            "-3.0 ± 5.9 points)") in since.line(), since.line()
    assert " ± " not in running.line()
    # the same 3 points over 2,000 answers are beyond chance: an impact
    (longer,) = alarm_severity(_alarm_at_300(2300), prior, atc_threshold=200)
    assert "over the 2000 answers since the alarm; estimated impact: -3.0 ± 1.3 points" in longer.line(), longer.line()
    # frames lost after the alarm: the line counts what arrived of what the device ran
    kept = np.ones(len(data["inference_index"]), bool)
    kept[np.flatnonzero(data["inference_index"] > 300)[::4]] = False
    (lossy,) = alarm_severity({k: v[kept] for k, v in data.items()}, prior, atc_threshold=200)
    assert "over the 75 answers received of 100 since the alarm" in lossy.line(), lossy.line()



def test_a_later_alarm_s_line_says_its_figures_are_read_from_the_first_alarm():
    """A trial's own recordings latched DATA_DRIFT at 300 and CONFIDENCE_DRIFT at 340; both
    lines read "over the 100 answers since the alarm": the second seemed to repeat the first's
    figures as its own. The device estimates one change point, so the figures are one; the
    later line now names the alarm they are counted from."""
    from tinydrift.logbook.store import alarm_severity

    data = _alarm_at_300(400)
    data["alarm_bits"] = data["alarm_bits"] | np.where(data["inference_index"] >= 340, 2, 0)
    first, later = alarm_severity(data, np.full(5, 0.2), atc_threshold=200)
    assert (first.name, later.name, later.latched_at) == ("DATA_DRIFT", "CONFIDENCE_DRIFT", 340)
    assert "over the 100 answers since the alarm;" in first.line(), first.line()
    assert "over the 100 answers since the first alarm (inference 300);" in later.line(), later.line()
    assert first.accuracy_now == later.accuracy_now

def test_a_severity_line_over_too_few_answers_since_the_alarm_shows_the_running_atc_and_says_so():
    """Given the model folder, a capture cut one answer after the alarm read "100.0 % now
    (estimated impact: +4.7 points)" (one confident answer), five after it "harmless so far",
    and one cut at the alarm showed the running ATC unnamed: on so few answers the share of
    confident ones is noise. The device's running figure is shown then, named, with why."""
    from tinydrift.logbook.store import alarm_severity
    from tinydrift.monitor.accuracy_estimate import MIN_ANSWERS

    prior = np.full(5, 0.2)
    for n, why in ((300, "no answer since the alarm yet"), (301, "only 1 answer since the alarm, too few"),
                   (300 + MIN_ANSWERS - 1, f"only {MIN_ANSWERS - 1} answers since the alarm, too few")):
        data = _alarm_at_300(n)
        data["confidence"][300:] = 250  # every answer since the alarm confident: 100 % on its own
        (line,) = alarm_severity(data, prior, atc_threshold=200)
        assert line.answers == 0 and abs(line.accuracy_now - 0.80) < 1e-4, (n, line)
        assert f"80.0 % now (the device's running ATC: {why}" in line.line() and "estimated impact: -13.0" in line.line()
        assert "nan" not in line.line() and "0 answers" not in line.line()
    (enough,) = alarm_severity(_alarm_at_300(300 + MIN_ANSWERS), prior, atc_threshold=200)
    assert enough.answers == MIN_ANSWERS and f"over the {MIN_ANSWERS} answers since the alarm" in enough.line()


def test_a_severity_line_with_no_frame_before_the_change_point_says_so_in_one_parenthesis():
    from tinydrift.logbook.store import alarm_severity

    data = {k: v[260:] for k, v in _alarm_at_300(400).items()}  # the capture began after the change point
    (line,) = alarm_severity(data, np.full(5, 0.2), atc_threshold=200)
    assert line.impact_points is None and line.impact() == (
        "estimated accuracy 90.0 % now (ATC over the 100 answers since the alarm); no frame from before the change "
        "point (~inference 250) arrived to compare with")


def test_a_run_reset_after_its_alarm_is_not_measured_by_the_next_run():
    """A microphone with a DC offset latched SENSOR_FAULT at inference 60; the monitor was
    reset (`replay --reset`: the index starts again at 1, the alarm cleared) and 60 good clips
    followed. The fault's line read "97.7 % now (...; harmless so far: -0.6 points)" from the
    repaired microphone's frames, and given the model folder took the 60 faulty frames
    (index 61-120 > 60) as the answers since the alarm."""
    from tinydrift.logbook.store import alarm_severity

    first, second = np.arange(1, 121), np.arange(1, 141)
    index = np.concatenate([first, second])
    fault = np.where(first >= 60, 1 << 4, 0)
    drift = np.where(second >= 100, 1, 0)  # the second run's own DATA_DRIFT, change point 80
    data = {"inference_index": index, "alarm_bits": np.concatenate([fault, drift]),
            "alarm_index": np.concatenate([np.where(first >= 60, 60, 0), np.where(second >= 100, 100, 0)]),
            "change_index": np.concatenate([np.where(first >= 60, 60, 0), np.where(second >= 100, 80, 0)]),
            "atc": np.full(len(index), int(0.95 * 65536)), "predicted_class": index % 5,
            # the faulty frames all unconfident, the second run's all confident
            "confidence": np.concatenate([np.where(first > 60, 10, 250), np.full(len(second), 250)])}
    for given, answers, now in (({}, 0, 0.95), ({"prior": np.full(5, 0.2), "atc_threshold": 200}, 40, 1.0)):
        dead, moved = alarm_severity(data, **given)
        assert (dead.name, dead.latched_at, dead.accuracy_now) == ("SENSOR_FAULT", 60, None), dead
        assert "withheld: sensor fault" in dead.line() and "harmless" not in dead.line()
        assert (moved.name, moved.latched_at, moved.change_index) == ("DATA_DRIFT", 100, 80)
        assert moved.answers == answers and abs(moved.accuracy_now - now) < 1e-4, moved

def test_a_capture_across_a_monitor_reset_names_the_reset_and_each_alarm_s_run(tmp_path):
    """`replay --reset` into a device that had already run: the plots went by arrival order
    and said "the device restarted", while the page said "device restarts 0" and named the
    alarms by the device's own counts, which start again after the reset. Run 1 alarms at
    inference 150 (change 120), the host resets the monitor (ACK, then HELLO with the
    sequence running on), and run 2 alarms at inference 90 (change 70)."""
    warning, drift = (4 * Q12,) * 5 + (0,) * 3, (8 * Q12,) * 5 + (0,) * 3
    seq = iter(range(10_000))
    hello = lambda: P.encode(P.Hello(next(seq), MODEL_HASH, 1, 2, 3, 412, 12, 40, 12, 5, warning, drift))

    def run(n: int, alarm_at: int, change: int) -> list[bytes]:
        return [P.encode(P.Inference(next(seq), t, MODEL_HASH[:8], t % 12, 240, int(t >= alarm_at), 20_000,
                                     int(0.9 * 65536), 0, change if t >= alarm_at else 0,
                                     (0,) * 8, alarm_at if t >= alarm_at else 0)) for t in range(1, n + 1)]

    stream = b"".join([hello(), *run(200, 150, 120), P.encode(P.Ack(next(seq), 7, 0, int(P.FrameType.RESET), 0)),
                       hello(), *run(100, 90, 70)])
    db = tmp_path / "reset.db"
    capture(TcpDevice(lambda conn: conn.sendall(stream)).url, db)
    result = write_report(db, tmp_path / "r")

    page = (tmp_path / "r" / "index.html").read_text()
    assert "<th>device restarts</th><td>0</td>" in page
    assert "<th>monitor resets (RESET accepted)</th><td>1</td>" in page
    assert "<th>runs of the inference count</th><td>2: it starts again at each reset or restart</td>" in page
    assert "<th>first alarm</th><td>inference 150 of run 1 of 2: DATA_DRIFT (estimated change point 120)</td>" in page
    assert [(a.name, a.latched_at, a.change_index, a.run) for a in result.severities] == [
        ("DATA_DRIFT", 150, 120, 1), ("DATA_DRIFT", 90, 70, 2)]
    assert "<th>alarm DATA_DRIFT (run 1)</th>" in page and "<th>alarm DATA_DRIFT (run 2)</th>" in page
    assert result.line().split("; ")[1].startswith("first alarm at inference 150 of run 1 of 2 (DATA_DRIFT)")
    for png in ("scores.png", "atc.png", "confidence.png"):
        _png_ok(tmp_path / "r" / png)
    # the plots (arrival order) mark each run's own alarm, the second at its 290th frame
    bits = np.concatenate([np.arange(1, 201) >= 150, np.arange(1, 101) >= 90]).astype(np.int64)
    assert _alarm_onsets(bits, np.arange(300.0), [0, 200]) == [(149.0, "DATA_DRIFT", 0), (289.0, "DATA_DRIFT", 0)]
    # a truth file describes one stream from a reset: against two runs its accuracy rows once
    # just vanished (trial 19); it is said on the page and in the line
    from tinydrift.logbook.report import Truth

    truth = Truth(121, np.zeros(300, np.int64))
    told = write_report(db, tmp_path / "t", truth=truth)
    unread = "--truth not read against the inferences: the capture holds 2 runs of the device"
    assert unread in told.line() and unread in (tmp_path / "t" / "index.html").read_text()
    assert told.true_accuracy == {}


def test_the_restart_axis_says_why_the_count_started_again():
    from tinydrift.logbook.report import _restart_text

    assert _restart_text(2, 1, 0) == ("inference (arrival order; the device's count starts again at each grey line: "
                                      "1 time, 1 monitor reset)")
    assert _restart_text(4, 1, 2).endswith("3 times, 1 monitor reset, 2 device restarts)")
    assert _restart_text(3, 0, 0).endswith("2 times)")  # frames lost around both: the reason not seen


@pytest.mark.parametrize("detector, named", [
    ("{not json", "detector.json is not readable JSON"),
    ('{"name": "okay_nabu", "model_hash": "00"}', "wake_word, probability_cutoff, sliding_window, feature_step_ms missing"),
    ('{"name": "okay_nabu", "model_hash": "%s", "wake_word": "Okay Nabu", "probability_cutoff": 300, '
     '"sliding_window": 5, "feature_step_ms": 10}' % ("ab" * 32), "probability_cutoff is not a whole number in 0..255"),
])
def test_a_damaged_wake_word_folder_is_named_in_one_line(tmp_path, detector, named):
    """A wake-word model's folder (`tinydrift wakeword export`) as --model-dir: a detector.json
    that cannot be read is refused by name, before any work."""
    db, _ = make_drift_db(tmp_path)
    folder = tmp_path / "okay_nabu"
    folder.mkdir()
    (folder / "detector.json").write_text(detector)
    result = CliRunner().invoke(main, ["report", str(db), "--out", str(tmp_path / "r"), "--model-dir", str(folder)])
    lines = result.output.strip().splitlines()
    assert result.exit_code != 0 and len(lines) == 1 and named in lines[0], result.output
    assert "Traceback" not in result.output and not (tmp_path / "r" / "index.html").exists()


def test_severity_withholds_the_estimate_under_a_sensor_fault_and_takes_piled_confident_answers_off_atc():
    from tinydrift.logbook.store import alarm_severity
    from tinydrift.monitor.accuracy_estimate import CAPPED

    n = 400
    index = np.arange(1, n + 1)
    prior = np.full(5, 0.2)
    # a smudged lens: DATA_DRIFT at 300 (change point 250); the model stays confident (ATC
    # 0.95) while its answers pile onto class 3 after the change, those of every 20th
    # inference under the ATC level (200 of 0-255)
    predicted = np.where(index < 250, index % 5, 3)
    data = {"inference_index": index, "alarm_bits": np.where(index >= 300, 1, 0),
            "alarm_index": np.where(index >= 300, 300, 0), "change_index": np.where(index >= 300, 250, 0),
            "atc": np.full(n, int(0.95 * 65536)), "predicted_class": predicted,
            "confidence": np.where(index % 20 == 0, 150, 250)}
    (smudge,) = alarm_severity(data, prior, atc_threshold=200)
    # 95 of the 100 answers after the alarm confident on class 3, whose share is a fifth
    assert smudge.basis == CAPPED and 0.95 - (0.95 - 0.2) < smudge.accuracy_now < 0.3
    assert CAPPED in smudge.line() and "estimated impact" in smudge.line()
    (atc_only,) = alarm_severity(data)  # without the model folder: the device's ATC as it is
    assert atc_only.basis == "ATC" and "harmless so far" in atc_only.line()
    # answers under the ATC level are already wrong to ATC: piled there, nothing more comes off
    data["confidence"] = np.where(index >= 250, 150, 250)
    assert alarm_severity(data, prior, atc_threshold=200)[0].basis == "ATC"
    # a dead camera: SENSOR_FAULT latched; the confident answers on black frames are not an estimate
    data["alarm_bits"] = np.where(index >= 300, 1 << 4, 0)
    (dead,) = alarm_severity(data, prior)
    assert dead.accuracy_now is None and dead.impact_points is None
    assert "accuracy estimate withheld: sensor fault" in dead.line() and "harmless" not in dead.line()


def test_a_report_that_fails_part_way_writes_nothing_and_a_path_not_in_utf8_is_shown(tmp_path, monkeypatch):
    """An interrupted report once left scores.png without its page; a database whose name is
    not UTF-8 ended in a UnicodeEncodeError after the images were written."""
    import os

    from tinydrift.logbook import report

    db, _ = make_drift_db(tmp_path)
    odd = tmp_path / os.fsdecode(b"d\xffu.sqlite")
    os.rename(db, odd)
    for suffix in ("-wal", "-shm"):
        if Path(str(db) + suffix).exists():
            os.rename(str(db) + suffix, str(odd) + suffix)
    result = write_report(odd, tmp_path / "report")
    assert "d\ufffdu.sqlite" in (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert len(result.files) == 4

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "_plot_detections", interrupted)
    monkeypatch.setattr(report, "_html", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_report(odd, tmp_path / "again")
    assert not (tmp_path / "again").exists()


def early_capture(folder: Path, inferences: int, boot_line: bytes = b"") -> tuple[Path, Path, int]:
    """(capture database, model folder, its commission_n) of a capture that ends at inference
    `inferences`, while the monitor still learns its reference; `boot_line`, the app's text
    line before its frames."""
    from test_capture import hello

    rng = random.Random(5)
    frames = [hello(0)] + [P.typical_inference(k, k, MODEL_HASH[:8], rng) for k in range(1, inferences + 1)]
    device = TcpDevice(lambda conn: conn.sendall(boot_line + b"".join(P.encode(f) for f in frames)))
    capture(device.url, folder / "early.db", reconnect_timeout=0)  # the device hangs up: no reconnecting
    model_dir = folder / "model"
    model_dir.mkdir()
    write_reference(model_dir, MODEL_HASH.hex(), warning=8 << 12, drift=16 << 12)  # test_capture's HELLO
    commission_n = json.loads((model_dir / "reference.json").read_text())["monitor_config"]["commission_n"]
    return folder / "early.db", model_dir, commission_n


def test_a_capture_that_ends_while_the_monitor_commissions_says_why_no_alarm_came(tmp_path):
    """200 clean images then 100 blurred said "no alarm", and nothing more: the monitor had
    not begun to judge (it commissions on its first 300 inferences after a reset). The boot
    line says whether it learns at all after this boot (trial 21: a device that took back a
    kept reference was said to be learning, and one reset since was said not to be)."""
    classes = ",".join(f"c{k}" for k in range(12))
    boot = f"tinydrift app board=host model={MODEL_HASH[:8].hex()} classes={classes} commission=300"
    _, model_dir, commission_n = early_capture(tmp_path, 200, boot_line=f"{boot} reference=learning\n".encode())
    result = write_report(tmp_path / "early.db", tmp_path / "r", model_dir=model_dir)
    said = (f"still commissioning: the monitor learns its reference on the first {commission_n} inferences after a "
            "reset and judges none of them, and this capture ends at inference 200")
    assert commission_n > 200 and result.commissioning == said and said in result.line()
    assert said in (tmp_path / "r" / "index.html").read_text()
    kept = tmp_path / "kept"
    kept.mkdir()
    early_capture(kept, 200, boot_line=f"{boot} reference=kept\n".encode())
    assert write_report(kept / "early.db", kept / "r", model_dir=model_dir).commissioning is None  # it judges
    # a capture begun after the boot: the folder says how many, not whether it learns them
    after = tmp_path / "after"
    after.mkdir()
    early_capture(after, 200)
    assert write_report(after / "early.db", after / "r", model_dir=model_dir).commissioning.startswith(
        f"perhaps still commissioning: the monitor learns its reference on the first {commission_n} inferences "
        "after a reset or a boot")
    # without the folder or the boot line, how many is unknown; that it may be is said
    assert write_report(tmp_path / "early.db", tmp_path / "r2").commissioning.startswith(
        "still commissioning: the monitor learns its reference on the first 300")
    assert write_report(after / "early.db", after / "r2").commissioning.startswith(
        "perhaps still commissioning: this capture ends at inference 200")


def test_a_reset_after_a_boot_that_kept_its_reference_is_commissioning_again(tmp_path):
    """The boot line said `reference=kept`; a RESET since forgot it, and the device learns
    again: the report said nothing of it (trial 21)."""
    from test_capture import hello

    classes = ",".join(f"c{k}" for k in range(12))
    boot = f"tinydrift app board=host model={MODEL_HASH[:8].hex()} classes={classes} commission=300 reference=kept\n"
    rng = random.Random(6)
    frames = [hello(0), P.Ack(1, 7, 0, int(P.FrameType.RESET), 0), hello(2)]
    frames += [P.typical_inference(k + 2, k, MODEL_HASH[:8], rng) for k in range(1, 121)]
    device = TcpDevice(lambda conn: conn.sendall(boot.encode() + b"".join(P.encode(f) for f in frames)))
    capture(device.url, tmp_path / "reset.db", reconnect_timeout=0)
    assert write_report(tmp_path / "reset.db", tmp_path / "r").commissioning == (
        "still commissioning: the monitor learns its reference on the first 300 inferences after a reset and judges "
        "none of them, and this capture ends at inference 120")


def test_the_report_says_how_much_of_the_sensor_was_dead_while_the_reference_was_learned(tmp_path):
    """A sensor already failing on and off as the device learns its reference is learned as
    normal (trial 22: nothing said so). The app's line on the reference in effect gives the
    dead share; the report shows it, points out a large one, and drops it once a RESET has
    made the device learn again."""
    import time

    from test_capture import hello

    classes = ",".join(f"c{k}" for k in range(12))
    boot = f"tinydrift app board=host model={MODEL_HASH[:8].hex()} classes={classes} commission=300"
    rng = random.Random(7)
    inferences = [P.typical_inference(k, k, MODEL_HASH[:8], rng) for k in range(1, 321)]

    def report(name, *chunks):
        def send(conn):
            for chunk in chunks:  # one read each: a RESET's HELLO comes after the line it voids
                conn.sendall(chunk)
                time.sleep(0.3)
        device = TcpDevice(send)
        capture(device.url, tmp_path / f"{name}.db", reconnect_timeout=0)
        return write_report(tmp_path / f"{name}.db", tmp_path / name)

    def frames(items):
        return b"".join(P.encode(f) for f in items)

    kept = report("kept", f"{boot} reference=kept\ntinydrift app reference=kept dead=12.5%\n".encode()
                  + frames([hello(0)] + inferences[:20]))
    assert kept.reference.startswith("kept from an earlier boot; 12.5 % of the sensor's blocks were dead")
    assert "check the sensor" in kept.reference and html.escape(kept.reference) in (tmp_path / "kept" / "index.html").read_text()
    learned = report("learned", f"{boot} reference=learning\n".encode() + frames([hello(0)] + inferences[:300]),
                     b"tinydrift app reference=learned dead=0.4%\n" + frames(inferences[300:]))
    assert learned.reference.startswith("learned on the device; 0.4 % of") and "check the sensor" not in learned.reference
    assert "allows that share" in learned.reference
    # a device whose dead-time test is off (the wake-word models') says so, and the report with it
    off = report("off", f"{boot} reference=learning\n".encode() + frames([hello(0)] + inferences[:300]),
                 b"tinydrift app reference=learned dead=0.4% dead_test=off\n" + frames(inferences[300:]))
    assert "is off on this device" in off.reference and "allows" not in off.reference
    reset = report("reset", f"{boot} reference=learning\n".encode() + frames([hello(0)] + inferences[:300]),
                   b"tinydrift app reference=learned dead=0.4%\n" + frames(inferences[300:305]),
                   frames([P.Ack(306, 7, 0, int(P.FrameType.RESET), 0), hello(307)]))
    assert reset.reference is None
    assert report("none", f"{boot} reference=learning\n".encode() + frames([hello(0)] + inferences[:20])).reference is None


def test_without_a_model_folder_the_app_s_boot_line_says_the_monitor_commissions(tmp_path):
    """The report said only "no alarm" for a capture inside the commissioning stretch unless
    --model-dir was given; the app's boot line now says how long that stretch is."""
    classes = ",".join(f"c{k}" for k in range(12))
    line = f"tinydrift app board=host model={MODEL_HASH[:8].hex()} classes={classes} commission=300\n".encode()
    early_capture(tmp_path, 200, boot_line=line)
    assert write_report(tmp_path / "early.db", tmp_path / "r").commissioning == (
        "still commissioning: the monitor learns its reference on the first 300 inferences after a reset and judges "
        "none of them, and this capture ends at inference 200")


def test_reading_a_capture_leaves_it_as_it_was(tmp_path):
    """report and monitor --once once left an empty -wal and a -shm beside a finished capture:
    a read-only SQLite connection makes them and cannot remove them. The database itself
    stays byte for byte the same."""
    import os

    from tinydrift.logbook.live import run_monitor
    from tinydrift.logbook.store import open_db

    db, _ = make_drift_db(tmp_path)
    siblings = lambda: sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("drift.db"))
    before, stamp = db.read_bytes(), os.stat(db).st_mtime_ns
    assert siblings() == ["drift.db"]
    write_report(db, tmp_path / "report")
    run_monitor(db_path=db, once=True)
    conn = open_db(db)
    with pytest.raises(sqlite3.OperationalError, match="readonly|read-only|query_only"):
        conn.execute("DELETE FROM frames")  # a reader cannot write, whatever the file allows
    conn.close()
    assert siblings() == ["drift.db"]
    assert db.read_bytes() == before and os.stat(db).st_mtime_ns == stamp


def test_reading_a_capture_beside_a_leftover_wal_leaves_no_shm(tmp_path):
    """A garbage -wal beside a finished capture (random bytes) is read read-only, and SQLite's
    read-only connection made a -shm that stayed after report, archive and monitor --once:
    each read now removes the -shm it made, leaving the -wal (not ours) and the database as
    they were. A -shm that a capture holds, begun before the read or during it, stays."""
    from tinydrift.logbook.live import run_monitor
    from tinydrift.logbook.store import archive, open_db

    db, _ = make_drift_db(tmp_path)
    wal = Path(f"{db}-wal")
    garbage = random.Random(8).randbytes(5000)
    wal.write_bytes(garbage)
    siblings = lambda: sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("drift.db"))
    before = db.read_bytes()
    reads = {"report": lambda: write_report(db, tmp_path / "report"),
             "monitor --once": lambda: run_monitor(db_path=db, once=True),
             "archive": lambda: archive(db, tmp_path / "kept.sqlite"),
             "open_db": lambda: open_db(db).close()}
    for name, read in reads.items():
        read()
        assert siblings() == ["drift.db", "drift.db-wal"], name
        assert wal.read_bytes() == garbage and db.read_bytes() == before, name

    for began_first in (True, False):  # a capture that holds the database keeps its -shm
        capture_conn = sqlite3.connect(db) if began_first else None
        if capture_conn is not None:
            capture_conn.execute("SELECT COUNT(*) FROM frames").fetchone()
        conn = open_db(db)
        if capture_conn is None:
            capture_conn = sqlite3.connect(db)
            capture_conn.execute("SELECT COUNT(*) FROM frames").fetchone()
        conn.close()
        assert "drift.db-shm" in siblings(), began_first
        capture_conn.execute("INSERT INTO text_lines (session_id, received_at, line) VALUES (1, 0, 'still writing')")
        capture_conn.commit()
        capture_conn.close()  # the last connection, read-write: SQLite removes both
        assert siblings() == ["drift.db"], began_first
        wal.write_bytes(garbage)


@pytest.mark.parametrize("name", ["site#2.sqlite", "what?.sqlite", "100%.sqlite", "run 1 &x=y.sqlite"])
def test_a_capture_named_with_uri_characters_is_the_one_read(tmp_path, name):
    """'site#2.sqlite' was read as 'site': SQLite took the rest for the URI's fragment, read
    another capture of that name, or failed and left an empty file 'site' behind."""
    from tinydrift.logbook.live import run_monitor
    from tinydrift.logbook.store import archive, open_db, read_summary

    db, _ = make_drift_db(tmp_path)
    named = tmp_path / name
    db.rename(named)
    before = sorted(p.name for p in tmp_path.iterdir())
    conn = open_db(named)
    frames = read_summary(conn).frames
    conn.close()
    assert frames > 1000
    assert write_report(named, tmp_path / "r").summary.frames == frames
    assert run_monitor(db_path=named, once=True).summary.frames == frames
    assert archive(named, tmp_path / "kept.sqlite").frames == frames
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before + ["r", "kept.sqlite"])


def test_a_change_point_before_a_late_capture_s_first_frame_is_not_drawn_at_that_frame():
    """A capture begun at inference 401 of a device whose change point was 301: the plots
    drew the change point at 401 (clamped to the first frame) while the page said 301."""
    from tinydrift.logbook.report import _change_x

    data = _alarm_at_300(400)  # DATA_DRIFT at 300, change point 250
    x = data["inference_index"].astype(np.float64)
    assert _change_x(data, x, [0]) == (250.0, 1)
    late = {k: v[260:] for k, v in data.items()}  # the capture began at inference 261
    assert _change_x(late, late["inference_index"].astype(np.float64), [0]) == (None, 1)


def test_the_live_severity_of_an_error_rate_alarm_counts_the_labels_of_the_current_run(tmp_path):
    """monitor's line (severity_now) reads the labels the capture database holds, of the
    device's current run only (after its latest HELLO), from the change point on."""
    from tinydrift.logbook.store import LABELS_SCHEMA, severity_now

    conn = sqlite3.connect(tmp_path / "c.db")
    conn.execute("CREATE TABLE frames (id INTEGER PRIMARY KEY, type INTEGER, foreign_model INTEGER DEFAULT 0, "
                 "received_at REAL, inference_index INTEGER, predicted_class INTEGER, alarm_bits INTEGER)")
    conn.executescript(LABELS_SCHEMA)
    rows = [(1, int(P.FrameType.HELLO), 0.0, None, None, None)]  # an earlier run, then a reset (its HELLO)
    rows += [(1 + i, 2, float(i), i, 1, 0) for i in range(1, 101)]
    rows += [(200, int(P.FrameType.HELLO), 200.0, None, None, None)]
    rows += [(200 + i, 2, 200.0 + i, i, 1, 8 if i >= 60 else 0) for i in range(1, 101)]
    conn.executemany("INSERT INTO frames (id, type, received_at, inference_index, predicted_class, alarm_bits) "
                     "VALUES (?, ?, ?, ?, ?, ?)", rows)
    labels = [(0.0, i, 2, "taken", 0, None, None, None, 10.0 + i, 0) for i in range(50, 100, 5)]  # the old run's
    labels += [(0.0, i, 1 if i < 50 or i % 10 else 3, "taken", 0, None, None, None, 210.0 + i, 0)
               for i in range(10, 100, 5)]
    conn.executemany("INSERT INTO labels (queued_at, inference_index, label, state, attempts, session_id, sent_at, "
                     "command_seq, answered_at, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", labels)
    conn.commit()
    last = P.Inference(0, 100, b"", 1, 250, 8, 0, int(0.95 * 65536), 0, 50, (0,) * 8, 60)
    line = severity_now(conn, last, 0.95, None).line()
    # from 50 on in the current run: 50, 55, ..., 95 (10 labels), those at 50, 60, 70, 80, 90 wrong
    assert "the labels taken from inference 50 on: 5 of 10 disagreed with the model" in line, line
    assert "harmless" not in line


def test_the_labels_table_gives_the_model_s_answer_at_each_label_of_its_own_run():
    """The report listed what became of each label but not whether it agreed with the model:
    an ERROR_RATE alarm then had nothing on the page to rest on (trial 19)."""
    from tinydrift.logbook.report import _label_counts, _labels_html
    from tinydrift.logbook.store import label_runs

    index = np.concatenate([np.arange(1, 11), np.arange(1, 11)])  # two runs of the count
    data = {"inference_index": index, "received_at": np.arange(20, dtype=float),
            "predicted_class": np.concatenate([np.full(10, 1), np.full(10, 2)])}
    row = lambda i, label, state, at: {"inference_index": i, "label": label, "state": state, "answered_at": at,
                                        "attempts": 1, "result": 0, "queued_at": 0.0}
    labels = [row(3, 1, "taken", 5.5), row(3, 1, "taken", 15.5), row(4, 2, "taken", 16.5),
              row(5, 0, "refused", 17.0), row(40, 2, "taken", 18.0)]
    answers = [None if found is None else found[1] for found in label_runs(labels, data)]
    assert answers == [1, 2, 2, None, None]  # each in its own run; refused and unheard: none
    assert _label_counts(labels, answers) == ("4 taken, 1 refused; of the 3 taken whose answer the capture holds, "
                                              "1 disagreed with the model (33 %)")
    page = _labels_html(labels, ("a", "b", "c"), answers)
    assert "<th>model's answer there</th>" in page and "<td>2 (c) (disagrees)</td>" in page


def test_the_scores_plot_s_labels_row_places_each_label_at_its_inference_and_counts_per_run():
    """scores.png's labels row (trial 19: the ERROR_RATE alarm had no panel): each label the
    device took at its inference's place, whether it disagreed, and the share of its run's
    labels so far that did, starting anew with each run of the count."""
    from tinydrift.logbook.report import label_points
    from tinydrift.logbook.store import label_runs

    index = np.concatenate([np.arange(1, 11), np.arange(1, 11)])
    data = {"inference_index": index, "received_at": np.arange(20, dtype=float),
            "predicted_class": np.concatenate([np.full(10, 1), np.full(10, 2)])}
    row = lambda i, label, state, at: {"inference_index": i, "label": label, "state": state, "answered_at": at}
    labels = [row(3, 1, "taken", 5.5), row(3, 1, "taken", 15.5), row(4, 2, "taken", 16.5),
              row(5, 0, "refused", 17.0), row(40, 2, "taken", 18.0)]
    xs, wrong, share = label_points(labels, label_runs(labels, data), data, np.arange(20, dtype=float), [0, 10])
    assert xs.tolist() == [2.0, 12.0, 13.0] and wrong.tolist() == [False, True, False]
    assert share.tolist() == [0.0, 1.0, 0.5]


def test_archive_says_what_it_copied_while_a_capture_writes_on(tmp_path, monkeypatch):
    """archive printed 3,710 frames while the file it wrote held 3,706 (trial 19): it counted
    the source after copying it, and the capture had committed more meanwhile."""
    from tinydrift.logbook import store

    db, _ = make_drift_db(tmp_path)
    real_open = store.open_db

    class WrittenMeanwhile:
        """The source, with a capture's commit landing right after the copy was taken."""

        def __init__(self, conn):
            self.conn = conn

        def __getattr__(self, name):
            return getattr(self.conn, name)

        def backup(self, target):
            self.conn.backup(target)
            other = sqlite3.connect(db)
            other.execute("UPDATE sessions SET frames = frames + 4")
            other.commit()
            other.close()

    monkeypatch.setattr(store, "open_db", lambda path: WrittenMeanwhile(real_open(path)))
    said = store.archive(db, tmp_path / "kept.sqlite")
    monkeypatch.undo()
    kept = store.open_db(tmp_path / "kept.sqlite")
    assert said.frames == store.read_summary(kept).frames
    kept.close()


def test_alarms_latched_at_one_inference_are_all_drawn():
    """Trial 23: DATA_DRIFT and CONFIDENCE_DRIFT latched at one inference, and the second
    line hid the first in scores.png. Lines that share a place take turns in dashes, so
    both colours show in that pixel column; an alarm alone keeps a solid line."""
    import matplotlib.colors
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3), dpi=100)
    ax.set_xlim(0, 100)
    _mark_alarms(ax, [(40.0, "DATA_DRIFT", 0), (40.0, "CONFIDENCE_DRIFT", 1), (90.0, "LABEL_SHIFT", 2)], None,
                 label=True)
    lines = ax.get_lines()
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)
    column = int(round(ax.transData.transform((40.0, 0))[0]))
    seen = pixels[:, column - 1:column + 2].reshape(-1, 3)
    for line in lines[:2]:  # alpha 0.9 on white: within a few levels of the line's colour
        want = np.array(matplotlib.colors.to_rgb(line.get_color())) * 255 * 0.9 + 255 * 0.1
        assert (np.abs(seen - want).max(axis=1) <= 3).sum() > 20, line.get_label()
    assert lines[2].get_linestyle() == "-" and lines[0].get_color() != lines[1].get_color()
    plt.close(fig)
