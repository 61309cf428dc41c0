"""`MediaStore.remove_unnamed`, the image clean-up after a session is deleted: it reads the
remaining session files in a worker thread, and keeps every image a turn could have named
while it read (held before or after the read, or stored since it began)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import hub.media_store
from hub.attachments import Attachment
from hub.media_store import MediaStore


def png(data: bytes) -> Attachment:
    return Attachment(name="p.png", media_type="image/png", data=data)


@pytest.fixture
def store(data_dir: Path) -> MediaStore:
    return MediaStore(data_dir)


def sessions(data_dir: Path, *named: str) -> Path:
    folder = data_dir / "sessions" / "main"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "other.jsonl").write_text("".join(f'{{"id": "{ref}"}}\n' for ref in named))
    return folder


async def test_only_images_nothing_names_or_holds_are_removed(
    store: MediaStore, data_dir: Path
) -> None:
    named, held, loose = (store.save("main", png(d)).id for d in (b"a", b"b", b"c"))
    folder = sessions(data_dir, named)
    gone = await store.remove_unnamed("main", [named, held, loose], folder, lambda: {held})
    assert gone == [loose]
    assert {p.name for p in (data_dir / "media" / "main").iterdir()} == {named, held}


async def test_the_files_are_read_off_the_event_loop(
    store: MediaStore, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loose = store.save("main", png(b"x")).id
    readers: list[threading.Thread] = []
    real = hub.media_store.referenced_ids

    def watched(paths: object) -> set[str]:
        readers.append(threading.current_thread())
        return real(paths)  # type: ignore[arg-type]

    monkeypatch.setattr(hub.media_store, "referenced_ids", watched)
    assert await store.remove_unnamed("main", [loose], sessions(data_dir), set) == [loose]
    assert readers and readers[0] is not threading.main_thread()


async def test_an_image_taken_up_while_the_files_are_read_is_kept(
    store: MediaStore, data_dir: Path
) -> None:
    """Two ways a turn can name an image in a file already read: it was queued when the read
    began and done by its end, or it stored the image (the same photo again) meanwhile."""
    first, second = (store.save("main", png(d)).id for d in (b"first", b"second"))
    folder = sessions(data_dir)
    calls: list[int] = []

    def held() -> set[str]:
        calls.append(1)
        if len(calls) == 1:  # as the read begins: one turn holds `first`, one resends `second`
            store.save("main", png(b"second"))
            return {first}
        return set()  # by the end both turns are done

    assert await store.remove_unnamed("main", [first, second], folder, held) == []
    assert len(calls) == 2


async def test_ids_that_are_not_image_names_are_ignored(store: MediaStore, data_dir: Path) -> None:
    folder = sessions(data_dir)
    assert await store.remove_unnamed("main", ["../secret", "x.png"], folder, set) == []
