"""tinydrift.atomic: a file is written whole or not at all; all_or_nothing() makes a set of
files (a model folder's export) appear together, or none of them, folders made for them
included; check_writable finds before long work what would stop the writes after it;
try_hold keeps a second writer out without waiting."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tinydrift.atomic import all_or_nothing, atomic_path, check_writable, try_hold, write_text


def test_a_set_written_inside_appears_only_when_the_block_ends(tmp_path):
    (tmp_path / "old.txt").write_text("old")
    with all_or_nothing():
        write_text(tmp_path / "old.txt", "new")
        write_text(tmp_path / "sub" / "a.txt", "a")
        with all_or_nothing():  # nested: the outer block decides
            write_text(tmp_path / "b.txt", "b")
        assert (tmp_path / "old.txt").read_text() == "old" and not (tmp_path / "b.txt").exists()
    assert [(tmp_path / n).read_text() for n in ("old.txt", "sub/a.txt", "b.txt")] == ["new", "a", "b"]
    assert not list(tmp_path.rglob(".*.tmp"))


@pytest.mark.parametrize("failure", ["error inside", "folder in a file's place"])
def test_a_failure_leaves_the_files_and_folders_as_they_were(tmp_path, failure):
    (tmp_path / "old.txt").write_text("old")
    if failure == "folder in a file's place":
        (tmp_path / "late.txt").mkdir()
    with pytest.raises((RuntimeError, IsADirectoryError)) as error:
        with all_or_nothing():
            write_text(tmp_path / "old.txt", "new")
            write_text(tmp_path / "made" / "deeper" / "a.txt", "a")
            write_text(tmp_path / "late.txt", "late")
            if failure == "error inside":
                raise RuntimeError("the export's last step failed")
    if failure == "folder in a file's place":  # named by the file asked for, not a temporary
        assert error.value.filename == str(tmp_path / "late.txt")
    assert (tmp_path / "old.txt").read_text() == "old" and not (tmp_path / "made").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["old.txt"] + (["late.txt"] if "folder" in failure else []))


@pytest.mark.parametrize("failure", [KeyboardInterrupt(), OSError(28, "No space left on device")])
def test_a_file_that_fails_while_being_written_leaves_no_temporary_and_is_named(tmp_path, failure):
    """A report interrupted while a plot was being saved, or an export that met a full disk,
    left `.scores.png.XXXX.tmp` beside the files; the full disk's error named no file."""
    with pytest.raises(type(failure)) as raised:
        with all_or_nothing():
            write_text(tmp_path / "done.txt", "done")
            with atomic_path(tmp_path / "scores.png") as tmp:
                tmp.write_bytes(b"half a plot")
                raise failure
    assert list(tmp_path.iterdir()) == []
    if isinstance(failure, OSError):
        assert raised.value.filename == str(tmp_path / "scores.png") and raised.value.errno == 28


def test_check_writable_names_what_would_stop_a_write_and_leaves_nothing(tmp_path):
    check_writable([tmp_path / "new" / "deeper" / "a.h", tmp_path / "b.json"])
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "include").write_text("a file where a folder goes")
    with pytest.raises(OSError, match="is a file where a folder goes") as error:
        check_writable([tmp_path / "include" / "a.h"])
    assert error.value.filename == str(tmp_path / "include")
    (tmp_path / "monitor.json").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder where a file is to be written"):
        check_writable([tmp_path / "monitor.json"])


def test_a_new_only_file_never_replaces_one_made_meanwhile(tmp_path):
    """Two `tinydrift archive` runs to one name both said "archived": the second had replaced
    the first's file."""
    from tinydrift.atomic import atomic_path

    target = tmp_path / "a.sqlite"
    with pytest.raises(FileExistsError):
        with atomic_path(target, new_only=True) as tmp:
            tmp.write_text("second")
            target.write_text("first")  # another program, between our check and our write
    assert target.read_text() == "first" and sorted(p.name for p in tmp_path.iterdir()) == ["a.sqlite"]
    with atomic_path(tmp_path / "b.sqlite", new_only=True) as tmp:
        tmp.write_text("only")
    assert (tmp_path / "b.sqlite").read_text() == "only" and len(list(tmp_path.iterdir())) == 2


def test_try_hold_keeps_another_process_out_until_the_holder_closes(tmp_path):
    """Another process, as two captures, gateways or demos would be: an exclusive hold
    refuses it at once, a shared one lets other shared holds in but not an exclusive one."""
    path = tmp_path / "held"
    path.write_text("")
    probe = ("import sys; from tinydrift.atomic import try_hold; "
             "f = open(sys.argv[1]); print(try_hold(f), try_hold(open(sys.argv[1]), shared=True))")

    def other_process_gets() -> str:
        return subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True,
                              check=True, timeout=60).stdout.split()

    assert other_process_gets() == ["True", "False"]  # nobody here: its own exclusive hold then keeps its shared out
    with open(path) as mine:
        assert try_hold(mine)
        assert other_process_gets() == ["False", "False"]
    with open(path) as mine:
        assert try_hold(mine, shared=True)
        assert other_process_gets() == ["False", "True"]
    assert other_process_gets() == ["True", "False"]
