"""A hand-edited monitor config's arrays are refused in one line that says what they hold,
in JSON's words (once numpy's: "got str128 values")."""

from __future__ import annotations

import json

import pytest

from tinydrift.errors import TinydriftError
from tinydrift.firmware import REPO_ROOT
from tinydrift.monitor.config import MonitorConfig


@pytest.mark.parametrize("ref_mean, says", [
    (["a", "b"], "got text values"),
    ([True, False], "got true/false values"),
    ([1, None], "got mixed or null values"),
    ("zero", "got text values"),
])
def test_an_array_of_other_values_is_named_by_what_it_holds(ref_mean, says):
    config = json.loads((REPO_ROOT / "models" / "kws" / "reference.json").read_text())["monitor_config"]
    with pytest.raises(TinydriftError) as error:
        MonitorConfig.from_dict({**config, "ref_mean": ref_mean})
    assert str(error.value) == f"monitor config: ref_mean must hold integers, {says}"
