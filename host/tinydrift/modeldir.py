"""The one owner of a model folder: its file names, its JSON, its hash.

    MODEL/
      model_float.keras    the trained Keras model                 (tinydrift train)
      training.json        how it was trained                       (tinydrift train)
      model_int8.tflite    full int8 for TFLite Micro                (tinydrift quantize)
      include/             td_model_NAME.{h,c}, td_monitor_config_NAME.h, td_reference_NAME.h
      reference.json       the headers' JSON twin: name, hash, labels, monitor config, checks
      README.md            the model card                            (all three: tinydrift export)

    A streaming detector's folder (a microWakeWord model) holds, instead of the JSON above:
      detector.json        name, hash, wake word, cutoff, window    (tinydrift wakeword export)
      monitor.json         the calibrated monitor config             (tinydrift wakeword calibrate)

Every command that reads or writes one of these goes through `ModelDir`, so a name is spelled
once and a missing or damaged file is reported the same way everywhere.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

from tinydrift.atomic import write_text
from tinydrift.errors import TinydriftError

FLOAT_MODEL = "model_float.keras"
TRAINING_JSON = "training.json"
INT8_MODEL = "model_int8.tflite"
INCLUDE_DIR = "include"
REFERENCE_JSON = "reference.json"
DETECTOR_JSON = "detector.json"
MONITOR_JSON = "monitor.json"
MODEL_CARD = "README.md"
HASH_BYTES = 32  # SHA-256: the device's HELLO and STATUS frames carry all of it
ID_BYTES = 8  # its first bytes: what each INFERENCE frame carries
C_NAME = re.compile(r"[a-z][a-z0-9_]*")  # the model's name is spelled into C identifiers and file names
MAX_LABELS = 16  # the firmware monitor's TD_MONITOR_MAX_CLASSES


def model_hash(model: bytes, monitor_config: dict) -> str:
    """SHA-256 over the .tflite bytes and the canonical JSON of the monitor config: the one
    identity of a model folder, in its headers, its JSON and the device's frames."""
    digest = hashlib.sha256(model)
    digest.update(json.dumps(monitor_config, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()


class ModelDir:
    """A model folder, existing or about to be written."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._reference: dict | None = None

    def __repr__(self) -> str:
        return f"ModelDir({str(self.path)!r})"

    # -- paths
    @property
    def float_model(self) -> Path:
        return self.path / FLOAT_MODEL

    @property
    def training_json(self) -> Path:
        return self.path / TRAINING_JSON

    @property
    def int8_model(self) -> Path:
        return self.path / INT8_MODEL

    @property
    def include(self) -> Path:
        return self.path / INCLUDE_DIR

    @property
    def reference_json(self) -> Path:
        return self.path / REFERENCE_JSON

    @property
    def detector_json(self) -> Path:
        return self.path / DETECTOR_JSON

    @property
    def monitor_json(self) -> Path:
        return self.path / MONITOR_JSON

    @property
    def is_detector(self) -> bool:
        """A streaming detector's folder (`tinydrift wakeword export`), not a classifier's."""
        return self.detector_json.is_file() and not self.reference_json.is_file()

    @property
    def is_camera(self) -> bool:
        """An exported camera model's folder: its reference summarizes images, not audio frames."""
        return (self.reference_json.is_file()
                and self.reference().get("input_summary", {}).get("kind") == "image")

    @property
    def model_card(self) -> Path:
        return self.path / MODEL_CARD

    def model_c(self, name: str) -> tuple[Path, Path]:
        return self.include / f"td_model_{name}.h", self.include / f"td_model_{name}.c"

    def monitor_config_header(self, name: str | None = None) -> Path:
        return self.include / f"td_monitor_config_{name or self.c_name()}.h"

    def reference_header(self, name: str) -> Path:
        return self.include / f"td_reference_{name}.h"

    def exported_names(self) -> list[str]:
        return exported_names(self.include)

    def generated_files(self, name: str) -> tuple[Path, ...]:
        """The C an export under C name `name` writes into include/."""
        return (*self.model_c(name), self.monitor_config_header(name), self.reference_header(name))

    def remove_derived(self) -> list[str]:
        """Remove what quantize and export made of an earlier float model (its int8 model,
        reference.json, model card and generated C), which a newly trained one makes stale;
        returns their names. A folder left with them would verify and build the old model."""
        gone = []
        for path in (self.int8_model, self.reference_json, self.model_card):
            if path.is_file():
                path.unlink()
                gone.append(path.name)
        for name in self.exported_names():
            for path in self.generated_files(name):
                if path.is_file():
                    path.unlink()
                    gone.append(f"{INCLUDE_DIR}/{path.name}")
        return gone

    def remove_exports_except(self, name: str) -> None:
        """Remove the generated headers and sources of every other C name: an export under a
        new name replaces the folder's old one (the build takes exactly one)."""
        for old in self.exported_names():
            if old != name:
                for path in self.generated_files(old):
                    path.unlink(missing_ok=True)

    # -- checks
    def require(self) -> "ModelDir":
        if not self.path.is_dir():
            raise TinydriftError(f"model folder {self.path} not found: give a folder made by `tinydrift export` "
                                 "(e.g. models/kws)")
        return self

    def not_a_classifier(self) -> TinydriftError:
        """The one message for a wake-word detector's folder given where a classifier's goes."""
        return TinydriftError(f"{self.path} is a wake-word detector's folder (tinydrift wakeword export), and this "
                              "command takes a classifier's (tinydrift export): for a wake-word model, run "
                              "`tinydrift wakeword demo MODEL` or `tinydrift wakeword --help`")

    def export_hint(self) -> str:
        """The command that exports this folder: an adopted model's takes the user's data
        (the built-in sets are not its classes), a model trained here the set it was."""
        adopted = bool(self._read_json(self.training_json, required=False).get("adopted_from"))
        data = " --data FOLDER (your recordings or images, one sub-folder per class)" if adopted else ""
        return f"`tinydrift export --model {self.path}{data}`"

    def require_exported(self) -> "ModelDir":
        """A folder `tinydrift export` has completed: reference.json and its headers."""
        self.require()
        reference = self.reference()
        name = reference["name"]
        missing = [p.name for p in self.generated_files(name)
                   if not p.is_file()]
        if missing:
            raise TinydriftError(f"{self.include}: missing {', '.join(missing)}; run {self.export_hint()}")
        return self

    # -- the files' contents
    def read_int8(self) -> bytes:
        try:
            return self.int8_model.read_bytes()
        except FileNotFoundError:
            raise TinydriftError(f"{self.int8_model} not found: make it with `tinydrift quantize --model {self.path}`") from None
        except OSError as exc:
            raise TinydriftError(f"{self.int8_model}: cannot read it ({exc.strerror})") from None

    def training(self) -> dict:
        """training.json, or {} when the model was not trained here."""
        data = self._read_json(self.training_json, required=False)
        for key, kind in (("config", dict), ("history", list), ("labels", list), ("train_clips", int), ("val_clips", int)):
            if key in data and not isinstance(data[key], kind):
                raise self.damaged(self.training_json, key, f"is not {'an' if kind is int else 'a'} {kind.__name__}")
        if "best_val_accuracy" in data and not _is_number(data["best_val_accuracy"], 0, 1):
            raise self.damaged(self.training_json, "best_val_accuracy", "is not a number in 0..1")
        return data

    def output_labels(self) -> tuple[str, ...] | None:
        """The class names in the model's output order, when the folder says: training.json's
        (a model trained here), else reference.json's (an exported one), else None."""
        labels = self.training().get("labels")
        if not labels and self.reference_json.is_file():
            labels = self.reference()["labels"]
        return tuple(labels) if labels else None

    def write_training(self, data: dict) -> None:
        write_text(self.training_json, json.dumps(data, indent=1))

    def reference(self) -> dict:
        """reference.json, checked for the fields every reader relies on (types and ranges)."""
        if self._reference is None:
            data = self._read_json(self.reference_json, required=True)
            missing = [key for key in ("name", "model_hash", "labels", "monitor_config") if key not in data]
            if missing:
                raise self.damaged(self.reference_json, ", ".join(missing), "missing")
            problem = _reference_problem(data)
            if problem:
                raise self.damaged(self.reference_json, *problem)
            self._reference = data
        return self._reference

    def damaged(self, path: Path, key: str, why: str) -> TinydriftError:
        """The one message for a tampered or outdated file of this folder: which file, which key, the remedy."""
        if path == self.training_json:  # `train` or `adopt` wrote it, and a user may have edited it since
            return TinydriftError(f"{path}: {key} {why}; fix it (its labels: a list of class names, one per model "
                                  "output in output order), or make it again with `tinydrift train` or `tinydrift adopt`")
        return TinydriftError(f"{path}: {key} {why}; regenerate it with `tinydrift export --model {self.path}`")

    def detector(self) -> dict:
        """detector.json, checked: name, model_hash, wake_word, probability_cutoff (uint8, as the
        device compares), sliding_window, feature_step_ms."""
        data = self._read_json(self.detector_json, required=True)
        problem = _detector_problem(data)
        if problem:
            raise TinydriftError(f"{self.detector_json}: {problem[0]} {problem[1]}; regenerate it with "
                                 f"`tinydrift wakeword export MODEL --out {self.path}`")
        return data

    def write_detector(self, data: dict) -> None:
        write_text(self.detector_json, json.dumps(data, indent=1))

    def write_reference(self, data: dict) -> None:
        write_text(self.reference_json, json.dumps(data, indent=1))
        self._reference = None

    def write_model_card(self, text: str) -> None:
        write_text(self.model_card, text)

    # -- what the headers and the device's frames say
    def c_name(self) -> str:
        """The model's C name (td_NAME_invoke): reference.json's, else the one td_model_NAME.h."""
        if self.reference_json.is_file():
            return self.reference()["name"]
        return single_export_name(self.include, self.path)

    def default_c_name(self) -> str:
        """The C name an export takes unless told: the one the folder was exported under
        before (a re-export keeps its names), else the folder's own name spelled as a C name
        (models/kws: kws; my-model: my_model)."""
        names = self.exported_names()
        if len(names) == 1 and C_NAME.fullmatch(names[0]):
            return names[0]
        return c_name_of(self.path.resolve().name)

    def exported_from(self, model: bytes) -> bool:
        """Whether reference.json was exported from `model` (its hash covers the model and the
        monitor config beside it)."""
        reference = self.reference()
        return model_hash(model, reference["monitor_config"]) == reference["model_hash"]

    @property
    def model_hash(self) -> bytes:
        source = self.detector() if self.is_detector else self.reference()
        return bytes.fromhex(source["model_hash"])

    @property
    def model_id(self) -> bytes:
        return self.model_hash[:ID_BYTES]

    @property
    def labels(self) -> list[str]:
        """The class names; a detector's monitor hears two classes, [1 - p, p]."""
        if self.is_detector:
            wake_word = self.detector()["wake_word"]
            return [f"not {wake_word}", wake_word]
        return list(self.reference()["labels"])

    @property
    def has_monitor(self) -> bool:
        """False for a detector's folder that `tinydrift wakeword calibrate` has not completed."""
        return not self.is_detector or self.monitor_json.is_file()

    def monitor_model_hash(self) -> str | None:
        """The model hash monitor.json was calibrated for (None: no readable one)."""
        if not self.monitor_json.is_file():
            return None
        try:
            held = json.loads(self.monitor_json.read_text()).get("model_hash")
        except (OSError, ValueError, AttributeError):
            return None
        return held if isinstance(held, str) else None

    def monitor_config(self) -> dict:
        """The monitor config as JSON (MonitorConfig.from_dict makes the object)."""
        if self.is_detector:
            data = self._read_json(self.monitor_json, required=False)
            if not isinstance(data.get("monitor_config"), dict):
                raise TinydriftError(f"{self.path}: no calibrated monitor in {MONITOR_JSON}; run "
                                     f"`tinydrift wakeword calibrate MODEL --out {self.path}`")
            exported = self.detector()["model_hash"]
            if data.get("model_hash") != exported:
                raise TinydriftError(f"{self.monitor_json} was calibrated for another model (hash "
                                     f"{str(data.get('model_hash'))[:12]}) than the one exported here (detector.json, "
                                     f"hash {exported[:12]}): run `tinydrift wakeword calibrate MODEL --out {self.path}` "
                                     "with the exported model")
            return data["monitor_config"]
        return self.reference()["monitor_config"]

    def _read_json(self, path: Path, *, required: bool) -> dict:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            if not required:
                return {}
            self.require()
            if path == self.reference_json and self.detector_json.is_file():
                raise self.not_a_classifier() from None
            raise TinydriftError(f"{path} not found: run {self.export_hint()} first (a wake-word "
                                 f"model's folder: `tinydrift wakeword export MODEL --out {self.path}`)") from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise TinydriftError(f"{path} is not readable JSON ({exc}); regenerate it") from None
        if not isinstance(data, dict):
            raise TinydriftError(f"{path}: expected a JSON object, found {type(data).__name__}; regenerate it")
        return data


def c_name_of(text: str) -> str:
    """`text` (a folder's or file's name) spelled as a C name: lower case, every other
    character '_', and 'model_' before one that does not start with a letter."""
    name = re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_")
    return name if C_NAME.fullmatch(name) else f"model_{name}".rstrip("_")


def exported_names(include: Path) -> list[str]:
    """The C names exported into an include folder (one td_model_NAME.h each)."""
    return sorted(h.stem[len("td_model_"):] for h in Path(include).glob("td_model_*.h"))


def single_export_name(include: Path, folder: Path) -> str:
    """The one C name exported into `include` (of the model folder `folder`), or why not."""
    names = exported_names(include)
    if not names:
        raise TinydriftError(f"{include}: no td_model_NAME.h; run {ModelDir(folder).export_hint()} (a wake-word "
                             f"model: `tinydrift wakeword export MODEL --out {folder}`)")
    if len(names) > 1:
        raise TinydriftError(f"{include}: exports of several models ({', '.join(f'td_model_{n}.h' for n in names)}), "
                             "and a build takes one: remove the others' td_*_NAME files, or export into a new folder")
    return names[0]


def _is_number(value, low: float, high: float) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and low <= value <= high)


def _detector_problem(data: dict) -> tuple[str, str] | None:
    """(key, what is wrong) for the first field of detector.json a reader could trip on, or None."""
    missing = [key for key in ("name", "model_hash", "wake_word", "probability_cutoff", "sliding_window",
                               "feature_step_ms") if key not in data]
    if missing:
        return ", ".join(missing), "missing"
    if not (isinstance(data["name"], str) and C_NAME.fullmatch(data["name"])):
        return "name", f"{data['name']!r} is not a C name (lower-case letters, digits, '_')"
    try:
        if len(bytes.fromhex(data["model_hash"])) != HASH_BYTES:
            return "model_hash", f"is not {2 * HASH_BYTES} hex digits"
    except (TypeError, ValueError):
        return "model_hash", "is not hex"
    if not (isinstance(data["wake_word"], str) and data["wake_word"]):
        return "wake_word", "is not a phrase"
    for key, low, high in (("probability_cutoff", 0, 255), ("sliding_window", 1, 255), ("feature_step_ms", 1, 1000)):
        value = data[key]
        if not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
            return key, f"is not a whole number in {low}..{high}"
    return None


def _reference_problem(data: dict) -> tuple[str, str] | None:
    """(key, what is wrong) for the first field of reference.json a reader could trip on, or None."""
    name, labels, config = data["name"], data["labels"], data["monitor_config"]
    if not (isinstance(name, str) and C_NAME.fullmatch(name)):
        return "name", f"{name!r} is not a C name (lower-case letters, digits, '_')"
    try:
        if len(bytes.fromhex(data["model_hash"])) != HASH_BYTES:
            return "model_hash", f"is not {2 * HASH_BYTES} hex digits"
    except (TypeError, ValueError):
        return "model_hash", "is not hex"
    if not (isinstance(labels, list) and 1 <= len(labels) <= MAX_LABELS
            and all(isinstance(x, str) and x for x in labels)):
        return "labels", f"is not a list of 1 to {MAX_LABELS} class names"
    if not isinstance(config, dict):
        return "monitor_config", "is not an object"
    priors = config.get("prior_q16")
    if isinstance(priors, list) and len(priors) != len(labels):
        return "labels", f"names {len(labels)} classes but monitor_config has {len(priors)}"
    for key in ("score_warning", "score_drift"):
        levels = config.get(key)
        if not (isinstance(levels, list) and levels and all(_is_number(v, 1, 2**30) for v in levels)):
            return f"monitor_config.{key}", "is not a list of levels in 1..2^30"
    return None
