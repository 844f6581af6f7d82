"""The C front end on the synthetic splits: in-domain and accent-shifted clips alike."""

import numpy as np

from tinydrift.target.host_frontend import NativeFrontend
from tinydrift.data.clipset import ClipSet


def test_c_front_end_equals_host_features_on_test_and_accent_clips(small_kws):
    frontend = NativeFrontend()
    for split in ("test", "accent"):
        clips = ClipSet.load(small_kws / f"{split}.npz")
        ours = np.stack([frontend.process_clip(pcm) for pcm in clips.audio])
        assert ours.shape == clips.features.shape == (len(clips), 49, 40)
        mismatches = int((ours != clips.features).sum())
        assert mismatches == 0, f"{split}: {mismatches} of {ours.size} values differ"
