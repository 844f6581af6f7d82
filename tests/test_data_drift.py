"""`tinydrift data drift`: one of the drift bench's scenarios applied to a whole clip or image
set, written as a set or as class folders that `replay` and `eval` read back."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from tinydrift.cli.main import main
from tinydrift.data import scenarios
from tinydrift.data.clipset import ClipSet
from tinydrift.data.drifted import drifted, find_scenario, scenario_names, write_folder
from tinydrift.data.imagefolder import load_image_folder
from tinydrift.data.imageset import ImageSet
from tinydrift.data.labels import LABELS, PLANT_LABELS
from tinydrift.data.wavfolder import load_speech_commands
from tinydrift.errors import TinydriftError


def _clips(n: int = 24, seed: int = 0) -> ClipSet:
    rng = np.random.default_rng(seed)
    audio = (rng.normal(0, 2000, (n, 16000))).astype(np.int16)
    return ClipSet(audio=audio, labels=(np.arange(n) % len(LABELS)).astype(np.int16),
                   domain={"group": np.arange(n)})


def _images(n: int = 10, seed: int = 0) -> ImageSet:
    rng = np.random.default_rng(seed)
    return ImageSet(images=rng.integers(0, 256, (n, 48, 48, 3), dtype=np.uint8),
                    labels=(np.arange(n) % len(PLANT_LABELS)).astype(np.int16), label_names=PLANT_LABELS)


def test_an_image_set_drifted_into_class_folders_reads_back_pixel_for_pixel(tmp_path):
    images = _images()
    smudged = drifted(images, find_scenario("lens_smudge_2px", images=True), seed=0)
    assert np.abs(smudged.images.astype(int) - images.images).mean() > 10  # the noise images blurred
    assert write_folder(smudged, tmp_path / "smudged") == len(images)
    back = load_image_folder(tmp_path / "smudged", PLANT_LABELS)
    assert sorted(p.name for p in (tmp_path / "smudged").iterdir()) == sorted(PLANT_LABELS)
    order = np.argsort([name.split("/")[1] for name in back.domain["file"]])  # 00000.png ... in the set's order
    assert np.array_equal(back.images[order], smudged.images) and np.array_equal(back.labels[order], smudged.labels)
    assert not list(tmp_path.glob(".smudged.*"))  # the staging folder went into place


def test_a_stuck_camera_repeats_one_frame_and_a_dead_one_is_flat():
    images = _images()
    stuck = drifted(images, find_scenario("stuck_camera", images=True), seed=0)
    assert all(np.array_equal(frame, images.images[0]) for frame in stuck.images)
    dead = drifted(images, find_scenario("dead_camera", images=True), seed=0)
    assert dead.images.std(axis=(1, 2, 3)).max() < 2


def test_a_clip_set_gets_the_bench_s_transform_and_its_labels_move_where_the_scenario_moves_them(tmp_path):
    clips = _clips()
    quieter = drifted(clips, find_scenario("gain_down_20db", images=False, severity=-12), seed=0)
    assert np.array_equal(quieter.audio, scenarios.gain(clips.audio, None, -12.0))
    assert quieter.features is not None and quieter.features.shape[0] == len(clips)
    swapped = drifted(clips, find_scenario("labels_remapped", images=False), seed=0)
    yes, no = LABELS.index("yes"), LABELS.index("no")
    assert np.array_equal(swapped.audio, clips.audio)
    assert np.array_equal(swapped.labels == no, clips.labels == yes)
    write_folder(swapped, tmp_path / "swapped")
    assert np.array_equal(np.sort(load_speech_commands(tmp_path / "swapped").labels), np.sort(swapped.labels))


def test_a_class_mix_scenario_resamples_the_set_to_as_many_clips():
    clips = _clips(n=240)
    more_unknown = drifted(clips, find_scenario("unknown_x5", images=False), seed=0)
    unknown = LABELS.index("_unknown_")
    assert len(more_unknown) == len(clips)
    assert (more_unknown.labels == unknown).mean() > 3 * (clips.labels == unknown).mean()
    knocked = drifted(clips, find_scenario("yes_knocked_out", images=False), seed=0)
    assert not (knocked.labels == LABELS.index("yes")).any()


def test_scenarios_of_other_populations_and_fixed_severities_are_refused_by_name():
    assert "accent" not in scenario_names(False) and "lens_smudge_2px" in scenario_names(True)
    assert not any(name.endswith("_gradual") for name in scenario_names(False) + scenario_names(True))
    with pytest.raises(TinydriftError, match="another population of speakers"):
        find_scenario("accent", images=False)
    with pytest.raises(TinydriftError, match="real recordings, not a change of a given set: give the folder itself"):
        find_scenario("real_speech", images=False)
    with pytest.raises(TinydriftError, match="takes no other severity"):
        find_scenario("warm_cast", images=True, severity=1.2)
    with pytest.raises(TinydriftError, match="it is an audio scenario, for clip sets"):
        find_scenario("babble_5db", images=True)


def test_a_write_that_fails_part_way_leaves_no_folder(tmp_path, monkeypatch):
    import tinydrift.data.wavfolder as wavfolder

    real, written = wavfolder.write_wav, []

    def fail_on_the_third(path, pcm, rate=16000):
        if len(written) == 2:
            raise OSError(28, "No space left on device")
        written.append(path)
        real(path, pcm, rate)

    monkeypatch.setattr(wavfolder, "write_wav", fail_on_the_third)
    with pytest.raises(OSError):
        write_folder(_clips(), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_the_command_lists_every_scenario_it_takes_and_writes_a_set(tmp_path):
    help_text = CliRunner().invoke(main, ["data", "drift", "--help"]).output
    missing = [name for name in scenario_names(False) + scenario_names(True) if name not in help_text]
    assert missing == []
    _clips().save(tmp_path / "clips.npz")
    result = CliRunner().invoke(main, ["data", "drift", "white_noise_10db", str(tmp_path / "clips.npz"),
                                       "--out", str(tmp_path / "noisy.npz")])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"white_noise_10db: 24 clips of {tmp_path / 'clips.npz'} written to {tmp_path / 'noisy.npz'}"
    noisy = ClipSet.load(tmp_path / "noisy.npz")
    assert len(noisy) == 24 and not np.array_equal(noisy.audio, _clips().audio)


def test_the_severity_s_help_names_its_range_in_words():
    """`data drift --help` once showed --severity's range as "[x<=None]"."""
    from click.testing import CliRunner

    from tinydrift.cli.main import main

    result = CliRunner().invoke(main, ["data", "drift", "--help"])
    assert result.exit_code == 0 and "None]" not in result.output and "[any finite number]" in result.output


def test_every_scenario_s_own_severity_lies_in_the_range_its_transform_takes():
    """--severity is held to each transform's range (data drift refuses the rest in one line);
    the bench's own severities must pass the same check."""
    from tinydrift.data import camera_scenarios, scenarios

    for module in (scenarios, camera_scenarios):
        for s in module.SCENARIOS:
            if s.transform and isinstance(s.severity, (int, float)) and not isinstance(s.severity, bool):
                low, high, what = module.SEVERITY_RANGES[s.transform]
                assert low <= s.severity <= high, (s.name, what)


def test_a_folder_of_photos_is_drifted_at_the_size_the_model_sees_and_says_so(tmp_path):
    """A folder of 80x60 photos came back as 48x48 files named 00000.png... with nothing said
    (trial 18): the output line names the size, and --model-dir picks the model that sets it."""
    from PIL import Image

    from conftest import REPO_ROOT

    rng = np.random.default_rng(1)
    for kind in ("healthy", "blight"):
        (tmp_path / "photos" / kind).mkdir(parents=True)
        for i in range(2):
            photo = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
            Image.fromarray(photo).save(tmp_path / "photos" / kind / f"{i}.png")
    result = CliRunner().invoke(main, ["data", "drift", "lens_smudge_2px", str(tmp_path / "photos"), "--out",
                                       str(tmp_path / "smudged"), "--model-dir", str(REPO_ROOT / "models" / "plant")])
    assert result.exit_code == 0, result.output
    assert "(PNG files in class folders, 48x48 as the model sees them)" in result.output, result.output
    back = load_image_folder(tmp_path / "smudged", size=(48, 48))
    assert back.images.shape == (4, 48, 48, 3)
    refused = CliRunner().invoke(main, ["data", "drift", "lens_smudge_2px", str(tmp_path / "photos"), "--out",
                                        str(tmp_path / "other"), "--model-dir", str(REPO_ROOT / "models" / "kws")])
    assert refused.exit_code == 1 and "not a camera model; it sizes a folder of images only" in refused.output
    assert not (tmp_path / "other").exists()
