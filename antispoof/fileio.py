"""Atomic file writes: a reader, or a run killed at any moment, sees the old complete file or the new complete
file, never a partial one. Every score file, protocol, manifest, report and checkpoint is written through here.

A write goes to a temporary file beside the target, named ``.<name>.<host>-<pid>-<random>.tmp`` (``host``
names the machine and PID namespace whose process ``pid`` writes it), which is renamed onto the target once
it is complete. The file is created like ``open(path, "w")`` would create it: with the umask's permissions
(or the permissions of the file it replaces), and through a symlink to the file the link points at (the link
stays a link). A writer killed mid-write leaves its temporary file behind; the next write to the same folder
removes it, once it is certain that its writer is gone (see ``remove_stale_temporaries``).
"""

from __future__ import annotations

import contextlib
import filecmp
import hashlib
import os
import re
import secrets
import shutil
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

# A temporary file of a writer on another machine or container (same folder over NFS or a shared volume), or
# of an older version of this module (named by tempfile.mkstemp, without a PID), is abandoned once nobody has
# written to it this long.
STALE_AFTER_S = 15 * 60
# A temporary file whose PID belongs to a live process is kept, unless it is this old: by then the PID has
# been reused by another program, because a live writer keeps touching its file.
PID_REUSED_AFTER_S = 24 * 60 * 60


def _host_tag() -> str:
    """Names the PID space this process lives in: the machine, and on Linux its PID namespace (containers
    that share a host name and a folder still have PIDs of their own)."""
    identity = socket.gethostname()
    with contextlib.suppress(OSError):
        identity += f"/pid-ns:{os.stat('/proc/self/ns/pid').st_ino}"
    return hashlib.sha1(identity.encode()).hexdigest()[:8]


_HOST_TAG = _host_tag()
_TEMP_NAME = re.compile(r"^\..+\.(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[0-9a-f]{8}\.tmp$")
_MKSTEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # what earlier versions left behind


def _temporary_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{_HOST_TAG}-{os.getpid()}-{secrets.token_hex(4)}.tmp")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists and belongs to another user
        return True
    return True


def _is_stale(entry: os.DirEntry, now: float) -> bool:
    """Whether ``entry`` is a temporary file of ours whose writer is certainly gone."""
    ours = _TEMP_NAME.match(entry.name)
    if not ours and not _MKSTEMP_NAME.match(entry.name):
        return False
    try:
        if not entry.is_file(follow_symlinks=False):
            return False
        age = now - entry.stat(follow_symlinks=False).st_mtime
    except OSError:  # removed meanwhile by its writer or another cleaner
        return False
    if ours and ours["host"] == _HOST_TAG and os.name == "posix":
        return not _pid_alive(int(ours["pid"])) or age > PID_REUSED_AFTER_S
    # another machine's PID (or none) says nothing here: only a long silence does
    return age > STALE_AFTER_S


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that killed writers left in ``folder``; return what was removed.

    Only names of the form this module creates are considered, and only when their writer is gone: a
    process on this machine whose PID is no longer alive, or, for a writer elsewhere or of unknown PID, a
    file untouched for ``STALE_AFTER_S``. A concurrent writer's file is therefore left alone.
    """
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(".") and entry.name.endswith(".tmp") and _is_stale(entry, now):
            with contextlib.suppress(FileNotFoundError):  # another cleaner may have been quicker
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _write_target(path: Path) -> Path:
    """The file a write to ``path`` must replace: the file a symlink points at, else ``path`` itself."""
    return Path(os.path.realpath(path)) if os.path.islink(path) else path


def _create_temporary(target: Path) -> tuple[int, Path]:
    """A new file beside ``target`` with the permissions ``open()`` would give ``target``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = _temporary_name(target)
        try:
            fd = os.open(tmp, flags, 0o666)  # the kernel applies the umask (and default ACLs)
            break
        except FileExistsError:  # a random name collided: draw another
            continue
    try:
        existing = os.stat(target)
    except OSError:
        return fd, tmp
    try:  # replacing a file: keep its permissions, as writing into it would
        if hasattr(os, "fchmod"):
            os.fchmod(fd, stat.S_IMODE(existing.st_mode))
    except OSError:
        pass  # not our file to chmod: the umask's permissions will do
    return fd, tmp


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator:
    """Open a temporary file beside ``path``; on a clean exit flush, fsync and rename it onto ``path``.

    On an error the temporary file is removed and ``path`` is left as it was. Text modes default to UTF-8.
    A symlink at ``path`` is followed: its target is replaced and the link kept. The new file gets the
    permissions of the file it replaces, or the umask's. Stale temporary files of killed writers in the
    folder are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    target = _write_target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target.parent)
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    fd, tmp = _create_temporary(target)
    try:
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    with atomic_open(path) as handle:
        handle.write(text)
    return Path(path)


def link_or_copy(source: str | os.PathLike, target: str | os.PathLike, *, link: bool = True) -> Path:
    """Put ``source``'s bytes at ``target``: a hard link when ``link`` and the file system allow (no second
    copy of a corpus), else an atomic copy. A target that already holds the same bytes is kept; one that
    holds other bytes (an earlier run gave the name to another file) is replaced. Returns ``target``."""
    source, target = Path(source), Path(target)
    if target.exists():
        if os.path.samefile(source, target) or filecmp.cmp(source, target, shallow=False):
            return target
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(source, target)
            return target
        except OSError:  # another file system, or hard links not allowed: copy instead
            pass
    with open(source, "rb") as src, atomic_open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
    shutil.copystat(source, target)
    return target
