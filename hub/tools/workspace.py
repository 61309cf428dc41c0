"""A per-agent workspace (`<data-dir>/workspace/<agent>`) and the file tools confined to it.

Every path is taken relative to the workspace and resolved (following symlinks) before use; a
path that ends up outside, through `..`, an absolute path or a symlink, is refused. Reads and
listings are capped so a huge file cannot flood the model's context.
"""

from __future__ import annotations

import os
from pathlib import Path

from hub.errors import CodedError

MAX_READ_CHARS = 100_000
MAX_WRITE_CHARS = 2_000_000
MAX_LISTED = 500


class WorkspaceError(CodedError):
    """A file tool refused a path or could not do what was asked."""

    code = "workspace"


class Workspace:
    """One agent's folder and what the file tools may do in it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def ensure(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self.root.resolve()

    def resolve(self, path: str) -> Path:
        """`path` inside the workspace, resolved; raises WorkspaceError when it escapes."""
        root = self.ensure()
        if "\x00" in path:
            raise WorkspaceError("refused: the path contains a NUL character")
        candidate = (root / path).resolve()
        if candidate != root and not candidate.is_relative_to(root):
            raise WorkspaceError(f"refused: {path!r} is outside the workspace")
        return candidate

    def shown(self, path: Path) -> str:
        return str(path.relative_to(self.ensure())) or "."

    def read_file(self, path: str, offset: int = 0, limit: int = MAX_READ_CHARS) -> str:
        target = self._existing_file(path)
        text = target.read_text(encoding="utf-8", errors="replace")
        limit = max(1, min(limit, MAX_READ_CHARS))
        chunk = text[offset : offset + limit]
        if offset + limit < len(text):
            chunk += f"\n[... {len(text) - offset - limit} more characters; read on with offset]"
        return chunk

    def write_file(self, path: str, content: str) -> str:
        if len(content) > MAX_WRITE_CHARS:
            raise WorkspaceError(f"refused: content is over {MAX_WRITE_CHARS} characters")
        target = self.resolve(path)
        if target.is_dir():
            raise WorkspaceError(f"{path!r} is a folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        # O_NOFOLLOW: a symlink planted after the check is not followed out of the workspace.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        return f"wrote {len(content)} characters to {self.shown(target)}"

    def edit_file(self, path: str, old_text: str, new_text: str) -> str:
        target = self._existing_file(path)
        text = target.read_text(encoding="utf-8")
        count = text.count(old_text) if old_text else 0
        if count != 1:
            found = "not found" if count == 0 else f"found {count} times"
            raise WorkspaceError(f"old_text is {found} in {path!r}; it must match exactly once")
        return self.write_file(path, text.replace(old_text, new_text, 1)).replace("wrote", "edited")

    def list_files(self, path: str = ".") -> str:
        folder = self.resolve(path)
        if not folder.is_dir():
            raise WorkspaceError(f"{path!r} is not a folder in the workspace")
        lines = []
        for entry in sorted(folder.iterdir())[:MAX_LISTED]:
            mark = "/" if entry.is_dir() and not entry.is_symlink() else ""
            lines.append(f"{self.shown(entry) if entry.parent != folder else entry.name}{mark}")
        more = sum(1 for _ in folder.iterdir()) - len(lines)
        if more > 0:
            lines.append(f"[... {more} more]")
        return "\n".join(lines) or "(empty folder)"

    def _existing_file(self, path: str) -> Path:
        target = self.resolve(path)
        if not target.is_file():
            raise WorkspaceError(f"no file {path!r} in the workspace")
        return target
