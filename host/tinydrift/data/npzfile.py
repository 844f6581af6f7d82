"""Why a file is not a readable .npz archive, in one line. numpy's own messages mislead: a
text file "contains pickled (object) data" and it suggests loading it unsafely with
allow_pickle; a cut archive is a "BadZipFile"."""

from __future__ import annotations

import zipfile
from pathlib import Path

ZIP_MAGIC = b"PK\x03\x04"


def is_zip(path: str | Path) -> bool:
    """Whether the file starts as a zip archive does (an .npz, a .keras model)."""
    with open(path, "rb") as f:
        return f.read(len(ZIP_MAGIC)) == ZIP_MAGIC


def npz_problem(path: str | Path, error: Exception) -> str:
    """What `error` (raised by np.load or by reading an array from the archive) means for
    `path`: not an archive at all, a damaged or cut one, or (otherwise) the error itself."""
    try:
        if Path(path).stat().st_size == 0:
            return "the file is empty"
        if not is_zip(path):
            return "not a numpy .npz archive (a zip file of arrays)"
    except OSError as e:
        return e.strerror or str(e)
    if isinstance(error, (zipfile.BadZipFile, EOFError)) or "pickled" in str(error):
        return "a damaged or cut .npz archive"
    if "Object arrays cannot be loaded" in str(error):
        # numpy names its allow_pickle, which would run whatever code the file holds
        return "it holds an array of Python objects, which tinydrift does not load: save numeric arrays in it"
    return str(error)
