"""The microWakeWord streaming models that ESPHome voice satellites run, as the
pymicro-wakeword package ships them (`pip install tinydrift[wakeword]`): alexa, hey_jarvis,
hey_mycroft and okay_nabu, each a .tflite and a JSON config. They are read from the
installed package, never copied.

    model = wakeword_model("okay_nabu")
    model.tflite                    # bytes: int8 [1, 3, 40] in (three 10 ms feature frames),
                                    # uint8 [1, 1] out (a sigmoid), state in resource variables
    model.probability_cutoff, model.sliding_window_size, model.tensor_arena_size
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

from tinydrift.errors import TinydriftError

WAKEWORD_MODELS = ("alexa", "hey_jarvis", "hey_mycroft", "okay_nabu")
PACKAGE = "pymicro_wakeword"


@dataclass(frozen=True)
class WakewordModel:
    name: str
    wake_word: str
    tflite: bytes
    probability_cutoff: float
    sliding_window_size: int
    tensor_arena_size: int  # the arena its authors give TFLite Micro, in bytes
    feature_step_ms: int


def wakeword_model(name: str) -> WakewordModel:
    """One of WAKEWORD_MODELS, read from the installed pymicro-wakeword package."""
    if name not in WAKEWORD_MODELS:
        raise TinydriftError(f"unknown wake-word model '{name}': choose one of {', '.join(WAKEWORD_MODELS)}")
    try:
        folder = resources.files(PACKAGE) / "models"
    except ModuleNotFoundError:
        raise TinydriftError(
            "the microWakeWord models come with pymicro-wakeword, which is not installed: "
            "pip install 'tinydrift[wakeword]'"
        ) from None
    try:
        config = json.loads((folder / f"{name}.json").read_text())
        micro = config["micro"]
        return WakewordModel(
            name=name,
            wake_word=config["wake_word"],
            tflite=(folder / config["model"]).read_bytes(),
            probability_cutoff=float(micro["probability_cutoff"]),
            sliding_window_size=int(micro["sliding_window_size"]),
            tensor_arena_size=int(micro["tensor_arena_size"]),
            feature_step_ms=int(micro["feature_step_size"]),
        )
    except (OSError, KeyError, ValueError) as exc:
        raise TinydriftError(
            f"pymicro-wakeword's model '{name}' is missing or damaged ({exc}): reinstall it with "
            "pip install --force-reinstall 'tinydrift[wakeword]'"
        ) from None
