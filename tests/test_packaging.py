"""The wheel, installed outside any clone, as a gateway or a user would install it.

- core install (`pip install tinydrift-*.whl`): capture, monitor, report, replay and flash
  work and no TensorFlow comes with it; the firmware's C library ships inside the wheel;
- with the `train` extra: `tinydrift export` makes a model folder's headers from
  models/kws's int8 model.

The core test runs in the default tier (about a minute); the `[train]` one installs
TensorFlow into a fresh venv and is marked slow (about 5 minutes). Versions come from
requirements.lock, as in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCK = REPO_ROOT / "requirements.lock"


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", out, REPO_ROOT])
    (found,) = out.glob("tinydrift-*.whl")
    return found


def fresh_venv(folder: Path, requirement: str) -> Path:
    venv.create(folder, with_pip=True)
    python = folder / "bin" / "python"
    run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-c", LOCK, requirement])
    return folder / "bin"


@pytest.mark.slow  # ~45 s plus the wheel build: a fresh venv
def test_core_install_has_no_tensorflow_and_ships_the_c_library(wheel, tmp_path):
    bin_dir = fresh_venv(tmp_path / "core", str(wheel))
    for command in ("capture", "monitor", "report", "replay", "flash"):
        help_text = run([bin_dir / "tinydrift", command, "--help"], cwd=tmp_path).stdout
        assert f"Usage: tinydrift {command}" in help_text
    missing = subprocess.run([bin_dir / "python", "-c", "import tensorflow"], capture_output=True, text=True, cwd=tmp_path)
    assert missing.returncode != 0 and "No module named 'tensorflow'" in missing.stderr
    where = json.loads(run([bin_dir / "python", "-c", "import json, tinydrift.firmware as f; "
                            "print(json.dumps([str(f.LIB_SRC), f.IN_CLONE, str(f.PACKAGE_DIR), str(f.PIO_WORKSPACE)]))"],
                           cwd=tmp_path, env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}).stdout)
    lib_src, in_clone, package, workspace = Path(where[0]), where[1], Path(where[2]), Path(where[3])
    assert not in_clone and REPO_ROOT not in lib_src.parents
    # firmware builds go to the user's cache, not into the installed package
    assert workspace == tmp_path / "cache" / "tinydrift" / "firmware" and package not in workspace.parents
    for stage in ("frontend", "kernels", "monitor", "protocol", "app"):
        assert sorted((lib_src / stage).glob("*.c")), f"{stage}: no C sources in the wheel"
    assert (lib_src / "td_port.h").is_file()


@pytest.mark.slow
def test_train_extra_exports_the_reference_model_outside_the_clone(wheel, tmp_path):
    from tinydrift.data.synth import KwsConfig, build_kws

    # Export needs >= 2,000 reference clips; train and val are not read.
    data = tmp_path / "data"
    build_kws(data, KwsConfig(seed=3, clips_per_class={"train": 1, "val": 1, "ref": 170, "test": 15, "accent": 15}))
    model = tmp_path / "kws"
    model.mkdir()
    shutil.copy(REPO_ROOT / "models" / "kws" / "model_int8.tflite", model)
    bin_dir = fresh_venv(tmp_path / "full", f"tinydrift[train] @ {wheel.as_uri()}")
    run([bin_dir / "tinydrift", "export", "--model", model, "--data", data, "--target-arl0", "1000"], cwd=tmp_path)
    reference = json.loads((model / "reference.json").read_text())
    for header in ("td_model_kws.h", "td_model_kws.c", "td_monitor_config_kws.h", "td_reference_kws.h"):
        assert (model / "include" / header).stat().st_size > 0
    assert reference["model_hash"][:16] in (model / "include" / "td_reference_kws.h").read_text()
    # the same generated model C as the committed one: only the monitor config differs
    assert (model / "include" / "td_model_kws.c").read_text() == (REPO_ROOT / "models" / "kws" / "include" / "td_model_kws.c").read_text()
