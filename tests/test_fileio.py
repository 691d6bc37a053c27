"""antispoof.fileio: atomic writes keep the umask's permissions, write through symlinks, clean up after killed
writers (and only after them); link_or_copy."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from antispoof import fileio
from antispoof.fileio import atomic_open, link_or_copy, write_text_atomically

posix_only = pytest.mark.skipif(os.name != "posix", reason="permissions, symlinks and PIDs as on POSIX")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    """Set the process umask for one test, restoring it afterwards."""
    saved = os.umask(0o022)
    yield lambda value: os.umask(value)
    os.umask(saved)


@posix_only
@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_get_the_umask_permissions(tmp_path, umask, mask, expected):
    umask(mask)
    text_file = write_text_atomically(tmp_path / "report.md", "hello\n")
    with atomic_open(tmp_path / "state.pth", "wb") as f:
        f.write(b"\x00\x01")
    assert mode_of(text_file) == expected and mode_of(tmp_path / "state.pth") == expected


@posix_only
def test_a_replaced_file_keeps_its_permissions(tmp_path, umask):
    umask(0o022)
    path = tmp_path / "scores.txt"
    path.write_text("old\n")
    path.chmod(0o640)
    write_text_atomically(path, "new\n")
    assert path.read_text() == "new\n" and mode_of(path) == 0o640


@posix_only
def test_writing_through_a_symlink_updates_its_target_and_keeps_the_link(tmp_path):
    (tmp_path / "store").mkdir()
    (tmp_path / "runs").mkdir()
    target = tmp_path / "store" / "scores.txt"
    target.write_text("old\n")
    link = tmp_path / "runs" / "scores.txt"
    link.symlink_to(Path("..") / "store" / "scores.txt")  # relative, as users make them

    write_text_atomically(link, "new\n")
    assert link.is_symlink() and os.readlink(link) == str(Path("..") / "store" / "scores.txt")
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["scores.txt"]  # no temporaries
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["scores.txt"]


@posix_only
def test_a_dangling_symlink_gets_its_target_created(tmp_path):
    link = tmp_path / "latest.txt"
    link.symlink_to(tmp_path / "elsewhere.txt")
    write_text_atomically(link, "first\n")
    assert link.is_symlink() and (tmp_path / "elsewhere.txt").read_text() == "first\n"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = write_text_atomically(tmp_path / "a.txt", "old\n")
    with pytest.raises(RuntimeError), atomic_open(path) as f:
        f.write("half")
        raise RuntimeError("stop")
    assert path.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from antispoof.fileio import atomic_open
    with atomic_open(sys.argv[1]) as f:
        f.write("half of it")
        f.flush()
        print("writing", flush=True)
        {after}
    """
)


def run_writer(path: Path, after: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    code = KILLED_WRITER.format(after=after)
    return subprocess.Popen([sys.executable, "-c", code, str(path)], env=env, text=True, **kwargs)


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@posix_only
def test_the_temporary_of_a_killed_writer_is_removed_by_the_next_write_to_the_folder(tmp_path):
    writer = run_writer(tmp_path / "scores.txt", "os.kill(os.getpid(), signal.SIGKILL)")
    assert writer.wait(timeout=60) == -signal.SIGKILL
    (orphan,) = temporaries(tmp_path)
    assert orphan.startswith(".scores.txt.") and not (tmp_path / "scores.txt").exists()

    write_text_atomically(tmp_path / "other.txt", "x\n")  # another file, same folder
    assert temporaries(tmp_path) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["other.txt"]


@posix_only
def test_a_live_writers_temporary_is_left_alone(tmp_path):
    writer = run_writer(
        tmp_path / "big.pth", "sys.stdin.readline()", stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert writer.stdout.readline() == "writing\n"
        (theirs,) = temporaries(tmp_path)
        with atomic_open(tmp_path / "mine.txt") as f:  # our own unfinished write in the same folder, too
            f.write("mine")
            write_text_atomically(tmp_path / "third.txt", "x\n")
            assert theirs in temporaries(tmp_path) and len(temporaries(tmp_path)) == 2
        writer.stdin.write("\n")
        writer.stdin.flush()
        assert writer.wait(timeout=60) == 0
    finally:
        writer.kill()
    assert (tmp_path / "big.pth").read_text() == "half of it" and (
        tmp_path / "mine.txt"
    ).read_text() == "mine"
    assert temporaries(tmp_path) == []


def make_old(path: Path, seconds: float) -> Path:
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_temporaries_of_unknown_writers_are_removed_only_after_a_long_silence(tmp_path):
    old_age = fileio.STALE_AFTER_S + 60
    other_host = {
        "fresh": tmp_path / ".a.txt.00000000-1-0123abcd.tmp",
        "old": tmp_path / ".b.txt.00000000-1-0123abcd.tmp",
    }
    mkstemp_made = {"fresh": tmp_path / ".c.txt.k2j_9x1q.tmp", "old": tmp_path / ".d.txt.k2j_9x1q.tmp"}
    if fileio._HOST_TAG == "00000000":  # pragma: no cover - the one host whose tag this is
        pytest.skip("this host's tag collides with the test's 'other host'")
    for group in (other_host, mkstemp_made):
        for path in group.values():
            path.write_text("x")
        make_old(group["old"], old_age)
    names = (".notes.tmp", "draft.tmp", ".e.txt.abc.tmp", ".f.txt.k2j_9x1q.tmp.bak", ".g.txt.ABCDEFGH.tmp")
    not_ours = [tmp_path / name for name in names]
    for path in not_ours:
        path.write_text("keep")
        make_old(path, old_age)

    removed = fileio.remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([other_host["old"], mkstemp_made["old"]])
    assert other_host["fresh"].exists() and mkstemp_made["fresh"].exists()
    assert all(path.exists() for path in not_ours)


@posix_only
def test_a_temporary_whose_pid_is_reused_is_removed_after_a_day(tmp_path):
    name = f".a.txt.{fileio._HOST_TAG}-{os.getppid()}-0123abcd.tmp"  # a live PID (our parent)
    recent = tmp_path / name
    recent.write_text("x")
    assert fileio.remove_stale_temporaries(tmp_path) == []
    make_old(recent, fileio.PID_REUSED_AFTER_S + 60)
    assert fileio.remove_stale_temporaries(tmp_path) == [recent]


def test_checkpoints_are_written_through_atomic_open(tmp_path, umask):
    import torch

    from antispoof.training import checkpoints as tu

    umask(0o022)
    path = tu.save_checkpoint_atomically({"epoch": 1}, tmp_path / "state.pth")
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    if os.name == "posix":
        assert mode_of(path) == 0o644


def test_link_or_copy_links_copies_keeps_and_replaces(tmp_path):
    source = tmp_path / "a.flac"
    source.write_bytes(b"audio bytes")
    linked = link_or_copy(source, tmp_path / "out" / "linked.flac")
    assert linked.read_bytes() == b"audio bytes" and os.path.samefile(source, linked)

    copied = link_or_copy(source, tmp_path / "out" / "copied.flac", link=False)
    assert copied.read_bytes() == b"audio bytes" and not os.path.samefile(source, copied)
    assert copied.stat().st_mtime == pytest.approx(source.stat().st_mtime)  # metadata too, like copy2

    before = copied.stat().st_ino
    link_or_copy(source, copied, link=False)  # same bytes already there: kept as it is
    assert copied.stat().st_ino == before

    other = tmp_path / "b.flac"
    other.write_bytes(b"other audio")
    link_or_copy(other, copied)  # an earlier run gave the name to another file: replaced
    assert copied.read_bytes() == b"other audio" and os.path.samefile(other, copied)
    assert temporaries(tmp_path / "out") == []


def test_link_or_copy_falls_back_to_a_copy_when_links_fail(tmp_path, monkeypatch):
    source = tmp_path / "a.flac"
    source.write_bytes(b"audio bytes")

    def no_links(src, dst):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(fileio.os, "link", no_links)
    target = link_or_copy(source, tmp_path / "other_fs" / "a.flac")
    assert target.read_bytes() == b"audio bytes" and not os.path.samefile(source, target)
