"""Durable writes of line files: whole appends fsynced, torn tails cut, new files and
their directory entries made durable, owner-only folders, atomic replacement."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("agenthub.sessions")


def append_line(path: Path, line: bytes, *, create: bool) -> None:
    """Append `line` durably; `create` makes a new file (never an existing one), otherwise
    the file must exist (a deleted session is not silently recreated without its header)."""
    flags = os.O_RDWR | os.O_APPEND | (os.O_CREAT | os.O_EXCL if create else 0)
    fd = os.open(path, flags, 0o600)
    try:
        cut_torn_tail(fd, path)
        write_all(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd` (one `os.write` may take only part of it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def create_file(path: Path, data: bytes) -> None:
    """A new file holding `data`, its directory entry made durable too."""
    append_line(path, data, create=True)
    fsync_dir(path.parent)


def cut_torn_tail(fd: int, path: Path) -> None:
    """Drop an unterminated last line (a write torn by a crash) before appending after it."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    keep = 0
    end = size
    while end > 0:
        start = max(0, end - 65536)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            keep = start + newline + 1
            break
        end = start
    log.warning("%s: cutting a torn last line (%d bytes) before appending", path, size - keep)
    os.ftruncate(fd, keep)


def make_private_dir(path: Path) -> None:
    """Create `path` with mode 0700, whatever the umask; an existing
    folder is set to 0700 too."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def fsync_dir(folder: Path) -> None:
    """Make a new file's directory entry durable, not just its contents."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` (mode 0600) through a temporary file renamed over it, so a
    reader sees the old or the new content, never a mix."""
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)
    os.replace(temporary, path)
