"""Write files so that a crash never leaves a half-written one behind, and a set of files
(a model folder's export) so that a failure leaves none of them; hold a file for one writer."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
import threading
from pathlib import Path
from typing import Iterator

# The renames that all_or_nothing() holds back, per thread: (temporary, target) pairs.
_held = threading.local()


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, *, new_only: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` only on success. With
    `new_only`, FileExistsError instead if `target` exists by then (another program made it
    meanwhile): the file is linked into place, which never replaces one."""
    target = Path(target)
    if new_only and getattr(_held, "renames", None) is not None:
        raise ValueError("new_only files are not held back by all_or_nothing")
    made = getattr(_held, "made", None)
    if made is not None:  # all_or_nothing removes, on failure, the folders made for its files
        made.extend(folder for folder in reversed([*target.parents]) if not folder.exists())
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as e:  # named by the file asked for, not the temporary one beside it
        raise OSError(e.errno, e.strerror, str(target)) from None
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600; give the file the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    pending = getattr(_held, "renames", None)
    try:
        yield tmp_path
    except OSError as e:  # a full disk while writing: named by the file asked for, not the temporary
        tmp_path.unlink(missing_ok=True)
        if e.filename is None or e.filename == str(tmp_path):
            raise OSError(e.errno, e.strerror, str(target)) from None
        raise
    except BaseException:  # a failure or Ctrl-C while writing: the temporary goes, held back or not
        tmp_path.unlink(missing_ok=True)
        raise
    if pending is not None:
        pending.append((tmp_path, target))
        return
    try:
        if new_only:
            _link_new(tmp_path, target)
        else:
            _replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _refuse_folder(target: Path) -> None:
    """A folder where a file is to be written, named by the file (os.replace would name the
    temporary one)."""
    if target.is_dir():
        raise IsADirectoryError(21, "is a folder where a file is to be written", str(target))


def _link_new(tmp: Path, target: Path) -> None:
    """`tmp` also at `target`, or FileExistsError: a hard link never replaces a file. A file
    system without hard links (FAT) gets a check and a rename, which another writer could
    still race."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if target.exists():
            raise FileExistsError(errno.EEXIST, "exists", str(target)) from None
        _replace(tmp, target)


def _replace(tmp: Path, target: Path) -> None:
    _refuse_folder(target)
    os.replace(tmp, target)


@contextlib.contextmanager
def all_or_nothing() -> Iterator[None]:
    """Files written inside (through atomic_path) appear together when the block ends without
    an error; if anything inside fails, none of them is written and no temporary is left.
    Every target is checked before the first rename, so the renames themselves do not fail
    part way on a folder in a file's place."""
    if getattr(_held, "renames", None) is not None:  # nested: the outer block decides
        yield
        return
    _held.renames, _held.made = pending, made = [], []
    done = False
    try:
        yield
        for _, target in pending:
            _refuse_folder(target)
        for tmp, target in pending:
            os.replace(tmp, target)
        done = True
    finally:
        _held.renames = _held.made = None
        for tmp, _ in pending:
            if tmp.exists():
                tmp.unlink()
        if not done:
            for folder in reversed(made):
                with contextlib.suppress(OSError):
                    folder.rmdir()


def write_text(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def check_writable(targets) -> None:
    """Raise, before long work, the OSError that writing each target path later would meet: a
    folder in a file's place, a file in a folder's, a folder that cannot be made or written.
    Leaves nothing behind and touches no existing folder (folders it made to try are removed
    again)."""
    made: list[Path] = []
    try:
        for target in map(Path, targets):
            _refuse_folder(target)
            for folder in reversed([*target.parents]):
                if folder.exists():
                    if not folder.is_dir():
                        raise NotADirectoryError(20, "is a file where a folder goes", str(folder))
                    continue
                try:
                    folder.mkdir()
                except OSError as e:
                    raise OSError(e.errno, f"cannot be created ({e.strerror})", str(folder)) from None
                made.append(folder)
            if target.parent not in made and not os.access(target.parent, os.W_OK | os.X_OK):
                raise PermissionError(13, "is not writable", str(target.parent))
    finally:
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()


def try_hold(file, *, shared: bool = False) -> bool:
    """Take an advisory lock (flock) on an open file or descriptor without waiting: True if
    taken (it lasts until the descriptor is closed), False if another process holds it.
    `shared` locks are held by any number at once and only keep an exclusive one out."""
    try:
        fcntl.flock(file, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
