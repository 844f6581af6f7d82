"""Build the firmware's portable C for this host, so that pytest and `tinydrift verify` run
the very code the device runs and compare it with its Python reference."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from .errors import TinydriftError

REPO_ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_LIB = REPO_ROOT / "firmware" / "lib" / "tinydrift"
BUILD_DIR = REPO_ROOT / "build" / "host"

WARNINGS = ["-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wstrict-prototypes"]
SANITIZERS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


def compile_c(
    sources: list[Path],
    output: Path | None = None,
    *,
    include_dirs: list[Path] = (),
    defines: dict[str, str | int] | None = None,
    shared: bool = True,
    sanitize: bool = False,
    optimize: str = "-O2",
    extra_flags: list[str] = (),
    compiler: str = "gcc",
) -> Path:
    """Compile C sources into a shared library (for ctypes) or an executable.

    The output name defaults to a hash of the inputs under build/host/, so an unchanged
    build is reused and parallel test runs with different settings do not collide.
    """
    if shutil.which(compiler) is None:
        raise TinydriftError(f"{compiler} not found: run scripts/setup.sh (it installs the compilers)")
    sources = [Path(s) for s in sources]
    flags = ["-std=c99", optimize, *WARNINGS, *extra_flags]
    flags += [f"-I{d}" for d in include_dirs]
    flags += [f"-D{k}={v}" for k, v in (defines or {}).items()]
    if sanitize:
        flags += SANITIZERS
    if shared:
        flags += ["-shared", "-fPIC"]
    if output is None:
        digest = hashlib.sha256()
        for part in [compiler, *flags, *map(str, sources)]:
            digest.update(part.encode())
        for src in sources:
            digest.update(src.read_bytes())
        for d in include_dirs:
            for h in sorted(Path(d).rglob("*.h")):
                digest.update(h.read_bytes())
        suffix = ".so" if shared else ""
        output = BUILD_DIR / f"{sources[0].stem}-{digest.hexdigest()[:16]}{suffix}"
        if output.exists():
            return output
    output.parent.mkdir(parents=True, exist_ok=True)
    cmd = [compiler, *flags, *map(str, sources), "-o", str(output), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise TinydriftError(f"C build failed: {' '.join(cmd)}\n{proc.stderr}")
    return output
