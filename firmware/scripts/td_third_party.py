"""TFLite Micro's micro_speech front end sources, fetched at build time and never committed.

Standard library only: the PlatformIO build (tinydrift_build.py) loads this file by path,
and the host package loads the same file, so there is one fetch for both and the firmware
build never imports the host's Python package.

The C sources of the microfrontend lib and of kissfft come from the `pymicro-features`
source distribution (Apache-2.0 for the TensorFlow files, BSD-3 for kissfft), pinned by
version and sha256. `microfrontend_sources(third_party_dir)` downloads it once with pip into
THIRD_PARTY_DIR/downloads/, checks the hash, and extracts the per-frame C files into
THIRD_PARTY_DIR/pymicro-features-<version>/ (the callers pass the project's
build/third_party):

  tensorflow/lite/experimental/microfrontend/lib/*.h and *.c   (the sdist ships them as .cc;
                                                                 these compile as C99 as is;
                                                                 *_util.h for the config structs)
  kissfft/kiss_fft.{h,c}, kissfft/_kiss_fft_guts.h, kissfft/tools/kiss_fftr.{h,c}

Only the per-frame files are taken: the tables their *_util.cc files would compute at init
are generated on the host from TensorFlow's own library (codegen/frontend_tables.py), and
the sdist's fft.cc/fft_util.cc/kiss_fft_int16.cc are C++ only to wrap kissfft in a
namespace (td_frontend_fft.c replaces fft.cc in C).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path


PACKAGE = "pymicro-features"
VERSION = "2.0.2"
SDIST_NAME = f"pymicro_features-{VERSION}.tar.gz"
SDIST_SHA256 = "0d0bed7843ec78b6ced82d1a2dcddeb4fe5df61b3af80a281d0868c8e279c727"



class ThirdPartyError(Exception):
    """The sources cannot be fetched or read; the message says what to do."""

MICROFRONTEND_LIB = "tensorflow/lite/experimental/microfrontend/lib"

# The per-frame path of FrontendProcessSamples, minus fft.cc (C++).
MICROFRONTEND_C_FILES = [
    "frontend",
    "window",
    "filterbank",
    "noise_reduction",
    "pcan_gain_control",
    "log_scale",
    "log_lut",
]
MICROFRONTEND_HEADERS = [
    "bits",
    "fft",
    "filterbank",
    "frontend",
    "log_lut",
    "log_scale",
    "noise_reduction",
    "pcan_gain_control",
    "window",
    # Config structs only: codegen/frontend_tables.py mirrors them to call TF's init.
    "fft_util",
    "filterbank_util",
    "frontend_util",
    "log_scale_util",
    "noise_reduction_util",
    "pcan_gain_control_util",
    "window_util",
]
# sdist path -> extracted path (kissfft's .cc files are plain C).
KISSFFT_FILES = {
    "kissfft/kiss_fft.h": "kissfft/kiss_fft.h",
    "kissfft/_kiss_fft_guts.h": "kissfft/_kiss_fft_guts.h",
    "kissfft/kiss_fft.cc": "kissfft/kiss_fft.c",
    "kissfft/tools/kiss_fftr.h": "kissfft/tools/kiss_fftr.h",
    "kissfft/tools/kiss_fftr.cc": "kissfft/tools/kiss_fftr.c",
}


@dataclass(frozen=True)
class MicrofrontendSources:
    """Where the extracted third-party C is and how it must be compiled."""

    root: Path
    sources: tuple[Path, ...]
    include_dirs: tuple[Path, ...]
    # kissfft is built for 16-bit fixed point; every file that includes kiss_fft.h needs it.
    defines: dict


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_sdist(
    download_dir: Path,
    *,
    package: str = PACKAGE,
    version: str = VERSION,
    sha256: str = SDIST_SHA256,
) -> Path:
    """The pinned source distribution, downloaded with pip once and checked by hash."""
    download_dir = Path(download_dir)
    sdist = download_dir / f"{package.replace('-', '_')}-{version}.tar.gz"
    if sdist.exists() and _file_sha256(sdist) == sha256:
        return sdist
    download_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=download_dir, prefix=".pip-") as tmp:
        tmp_dir = Path(tmp)
        # Hash-checking mode makes pip verify the archive before it runs anything from it.
        requirements = tmp_dir / "requirements.txt"
        requirements.write_text(f"{package}=={version} --hash=sha256:{sha256}\n")
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
            "--require-hashes", "-r", str(requirements), "-d", str(tmp_dir / "out"),
            "--disable-pip-version-check", "--quiet",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            if any("DO NOT MATCH THE HASHES" in line for line in detail):
                raise ThirdPartyError(
                    f"{package}=={version}: the downloaded source archive's sha256 differs from "
                    f"the pinned {sha256}; the package on the index changed: do not build from it"
                )
            last = detail[-1] if detail else f"exit code {proc.returncode}"
            raise ThirdPartyError(
                f"could not download {package}=={version} with pip ({last}); check the "
                f"connection to the Python package index, or place {sdist.name} in {download_dir}"
            )
        found = sorted((tmp_dir / "out").glob("*.tar.gz"))
        if len(found) != 1:
            raise ThirdPartyError(
                f"pip download of {package}=={version} gave {[p.name for p in found]}, "
                "expected one .tar.gz source archive"
            )
        actual = _file_sha256(found[0])
        if actual != sha256:
            raise ThirdPartyError(
                f"{found[0].name}: sha256 {actual} differs from the pinned {sha256}; "
                "do not build from it"
            )
        os.replace(found[0], sdist)
    return sdist


def _members_to_extract() -> dict[str, str]:
    wanted = {}
    for name in MICROFRONTEND_C_FILES:
        wanted[f"{MICROFRONTEND_LIB}/{name}.cc"] = f"{MICROFRONTEND_LIB}/{name}.c"
    for name in MICROFRONTEND_HEADERS:
        wanted[f"{MICROFRONTEND_LIB}/{name}.h"] = f"{MICROFRONTEND_LIB}/{name}.h"
    wanted.update(KISSFFT_FILES)
    wanted["LICENSE"] = "LICENSE"
    return wanted


def extract_sources(sdist: Path, dest: Path) -> Path:
    """Extract the per-frame C files into `dest` (replaced whole, never half-written)."""
    wanted = _members_to_extract()
    # The stamp names the archive and the file list, so a change to either re-extracts.
    stamp = dest / ".extracted"
    fingerprint = _file_sha256(sdist) + " " + hashlib.sha256(repr(sorted(wanted.items())).encode()).hexdigest()
    if stamp.exists() and stamp.read_text().strip() == fingerprint:
        return dest
    prefix = sdist.name[: -len(".tar.gz")] + "/"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        try:
            with tarfile.open(sdist, "r:gz") as tar:
                for member in tar.getmembers():
                    inner = member.name[len(prefix):] if member.name.startswith(prefix) else None
                    if inner not in wanted or not member.isfile():
                        continue
                    data = tar.extractfile(member).read()
                    out = tmp / wanted.pop(inner)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(data)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ThirdPartyError(f"{sdist}: cannot read the source archive ({exc}); delete it and retry")
        if wanted:
            raise ThirdPartyError(
                f"{sdist}: missing {sorted(wanted)}; the pinned archive should contain them"
            )
        (tmp / ".extracted").write_text(fingerprint + "\n")
        if dest.exists():
            shutil.rmtree(dest, ignore_errors=True)
        try:
            os.replace(tmp, dest)
        except OSError:
            # Another process extracted the same files meanwhile: theirs are as good.
            if not (stamp.exists() and stamp.read_text().strip() == fingerprint):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dest


def microfrontend_sources(third_party_dir: Path) -> MicrofrontendSources:
    """Fetch (once), check and extract the front end's third-party C; say how to build it."""
    third_party_dir = Path(third_party_dir)
    sdist = fetch_sdist(third_party_dir / "downloads")
    root = extract_sources(sdist, third_party_dir / f"{PACKAGE}-{VERSION}")
    lib = root / MICROFRONTEND_LIB
    sources = [lib / f"{name}.c" for name in MICROFRONTEND_C_FILES]
    sources += [root / "kissfft" / "kiss_fft.c", root / "kissfft" / "tools" / "kiss_fftr.c"]
    return MicrofrontendSources(
        root=root,
        sources=tuple(sources),
        include_dirs=(root, root / "kissfft", root / "kissfft" / "tools"),
        defines={"FIXED_POINT": 16},
    )
