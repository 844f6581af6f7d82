"""Why a file is not a readable .npz archive, in one line. numpy's own messages mislead: a
text file "contains pickled (object) data" and it suggests loading it unsafely with
allow_pickle; a cut archive is a "BadZipFile"."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

ZIP_MAGIC = b"PK\x03\x04"


def is_zip(path: str | Path) -> bool:
    """Whether the file starts as a zip archive does (an .npz, a .keras model)."""
    with open(path, "rb") as f:
        return f.read(len(ZIP_MAGIC)) == ZIP_MAGIC


def open_npz(path: str | Path) -> np.lib.npyio.NpzFile:
    """np.load of an .npz archive, without pickles. A lone .npy array loads bare (no archive
    to enter or close), so it is a ValueError here, which npz_problem words."""
    loaded = np.load(path, allow_pickle=False)
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError("a single .npy array, not an .npz archive")
    return loaded


def read_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an .npz archive. A member that is not a .npy file reads as raw bytes
    from numpy: a ValueError naming it here."""
    with open_npz(path) as archive:
        arrays = {key: archive[key] for key in archive.files}
    odd = [key for key, value in arrays.items() if not isinstance(value, np.ndarray)]
    if odd:
        raise ValueError(f"a damaged .npz archive ({', '.join(sorted(odd)[:3])}: not numpy arrays)")
    return arrays


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
