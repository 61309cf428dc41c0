"""Where the images of turns are kept: `<data-dir>/media/<agentId>/<id>`, one file per
distinct content, named from the session entries that show them (`hub.attachments`)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from hub.attachments import IMAGE_TYPES, Attachment, AttachmentRef

log = logging.getLogger("agenthub.attachments")

# A stored image's id: its content's SHA-256 (first 32 hex digits) and its type's suffix.
_REF_ID = re.compile(rb"[0-9a-f]{32}\.(?:jpg|png|gif|webp|bin)")
# How old an image nothing references must be before the start-up sweep deletes it.
SWEEP_GRACE = 3600.0


class MediaStore:
    """Images of turns, under `<data-dir>/media/<agentId>/`: one file per distinct content
    (named by its SHA-256), so the same photo sent twice is stored once, and several sessions
    may name one file. A file goes when no session names it any more: `remove_unnamed` when a
    session is deleted, `sweep` at start-up (images stored by turns that never ran)."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "media"
        # When each image was last saved (monotonic), for `remove_unnamed`; an hour is kept.
        self._saved: dict[str, float] = {}

    def save(self, agent_id: str, attachment: Attachment) -> AttachmentRef:
        suffix = IMAGE_TYPES.get(attachment.media_type, ".bin")
        ref_id = hashlib.sha256(attachment.data).hexdigest()[:32] + suffix
        folder = self.root / agent_id
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = folder / ref_id
        if not path.exists():
            partial = folder / f".{ref_id}.{os.getpid()}.part"
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(attachment.data)
            os.replace(partial, path)
        self._note_saved(ref_id)
        return AttachmentRef(
            id=ref_id,
            name=attachment.name,
            media_type=attachment.media_type,
            size=len(attachment.data),
        )

    def _note_saved(self, ref_id: str) -> None:
        now = time.monotonic()
        self._saved[ref_id] = now
        if len(self._saved) > 1024:
            self._saved = {r: at for r, at in self._saved.items() if now - at < SWEEP_GRACE}

    def load(self, agent_id: str, ref_id: str) -> bytes:
        """The stored bytes; raises `FileNotFoundError` for an id that names no stored image."""
        if "/" in ref_id or "\\" in ref_id or ref_id.startswith("."):
            raise FileNotFoundError(ref_id)
        return (self.root / agent_id / ref_id).read_bytes()

    async def remove_unnamed(
        self,
        agent_id: str,
        ref_ids: Iterable[str],
        folder: Path,
        held: Callable[[], set[str]],
    ) -> list[str]:
        """Delete the stored images `ref_ids` that no session file of `folder` names and no
        turn holds (`held()`: the images of the turns queued or running); returns the ids
        removed. The files are read in a worker thread, so the hub goes on answering
        meanwhile; an image counts as held when a turn held it before or after the read, or
        was stored since the read began (a turn that came and went during the read may have
        named it in a file already read). Raises `OSError` when a file cannot be read."""
        wanted = {ref for ref in ref_ids if _REF_ID.fullmatch(ref.encode())}
        if not wanted:
            return []
        began, before = time.monotonic(), held()
        named = await asyncio.to_thread(lambda: referenced_ids(folder.glob("*.jsonl")))
        kept = named | before | held() | self._saved_since(began)
        return self._unlink(agent_id, sorted(wanted - kept))

    def _saved_since(self, moment: float) -> set[str]:
        return {ref for ref, at in self._saved.items() if at >= moment}

    def sweep(
        self, agent_id: str, keep: Iterable[Path], *, grace: float = SWEEP_GRACE
    ) -> list[str]:
        """At start-up: delete the agent's stored images (and leftover partial writes) that no
        file of `keep` names and that are older than `grace` seconds (a turn may be storing
        one now); returns the names removed."""
        folder = self.root / agent_id
        if not folder.is_dir():
            return []
        cutoff = time.time() - grace
        old = []
        for path in folder.iterdir():
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    old.append(path.name)
            except OSError:
                continue
        if not old:
            return []
        used = referenced_ids(keep)
        return self._unlink(agent_id, sorted(name for name in old if name not in used))

    def _unlink(self, agent_id: str, names: list[str]) -> list[str]:
        removed = []
        for name in names:
            try:
                (self.root / agent_id / name).unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("agent %s: could not delete image %s (%s)", agent_id, name, exc)
                continue
            removed.append(name)
        return removed


def referenced_ids(paths: Iterable[Path]) -> set[str]:
    """The stored-image ids the files name (session files hold them in their entries); an
    unreadable file makes nothing deletable, so it raises `OSError`."""
    found: set[str] = set()
    for path in paths:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        found.update(match.decode() for match in _REF_ID.findall(data))
    return found
