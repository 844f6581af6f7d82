"""TensorFlow and its converter talk a lot: a dump of every tensor spec, converter settings
printed from C, warnings about statistics nobody asked for. `held_back()` keeps that out of
the user's terminal (Python's streams and the C file descriptors alike) and shows it only
when the step fails, or always with `tinydrift --verbose` (TINYDRIFT_VERBOSE=1)."""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import io
import os
import sys
import tempfile
import warnings
from typing import Iterator

VERBOSE_ENV = "TINYDRIFT_VERBOSE"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def set_verbose(on: bool) -> None:
    """`--verbose`: call before TensorFlow is imported (its C++ log level is read once, at
    import). Off leaves TINYDRIFT_VERBOSE and TF_CPP_MIN_LOG_LEVEL as the user set them."""
    if on:
        os.environ[VERBOSE_ENV] = "1"
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"


@contextlib.contextmanager
def held_back() -> Iterator[None]:
    """Hold back what third-party code prints inside the block: to the C file descriptors 1
    and 2 (TensorFlow's and LiteRT's C++ logs, the converter's printf) and to Python's
    stdout (Keras prints the exported model's tensor specs), and its warnings. Python's
    stderr keeps reaching the user, so progress bars still move. On an exception the
    held-back text is written to stderr before the exception goes on."""
    if verbose():
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    user_stderr = os.fdopen(os.dup(saved[2]), "w", buffering=1)
    python_stdout = io.StringIO()
    held = ""
    try:
        with tempfile.TemporaryFile() as sink, warnings.catch_warnings(), \
                contextlib.redirect_stdout(python_stdout), contextlib.redirect_stderr(user_stderr):
            warnings.simplefilter("ignore")
            for fd in saved:
                os.dup2(sink.fileno(), fd)
            try:
                yield
            except Exception:  # not on Ctrl-C or an exit: the user stopped it, its logs say nothing
                sys.stdout.flush()
                sink.seek(0)
                held = python_stdout.getvalue() + sink.read().decode(errors="replace")
                raise
            finally:
                user_stderr.flush()
                for fd, copy in saved.items():
                    os.dup2(copy, fd)
                    os.close(copy)
    finally:
        user_stderr.close()
        if held:
            sys.stderr.write(held)


class _HeldBackImport(importlib.abc.MetaPathFinder):
    """Finds `name` as the other finders do, and runs its first import inside held_back():
    TensorFlow prints lines at import (oneDNN's notice, absl's) that its log level does not
    reach, wherever it is first imported (directly, or by tflite_micro or keras)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _HeldBackLoader(spec.loader)
        return spec


class _HeldBackLoader(importlib.abc.Loader):
    def __init__(self, loader) -> None:
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        with held_back():
            self.loader.exec_module(module)


def hold_back_tensorflow_import() -> None:
    """The CLI's: TensorFlow's import-time lines are held back unless --verbose."""
    if verbose() or "tensorflow" in sys.modules or any(isinstance(f, _HeldBackImport) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _HeldBackImport("tensorflow"))
