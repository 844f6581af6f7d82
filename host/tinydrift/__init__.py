"""tinydrift: on-device drift detection for TinyML, and the host toolchain that feeds it."""

import os

# TensorFlow logs its start-up to stderr at import; keep the CLI quiet unless asked.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
