"""The workspace file tools and the shell: confinement, caps, timeouts, a clean environment."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hub.tools.shell import ShellError, run_shell
from hub.tools.workspace import MAX_READ_CHARS, Workspace, WorkspaceError


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "workspace" / "main")


def test_write_read_edit_list(workspace: Workspace) -> None:
    assert (
        workspace.write_file("notes/a.txt", "hello world") == "wrote 11 characters to notes/a.txt"
    )
    assert workspace.read_file("notes/a.txt") == "hello world"
    assert workspace.edit_file("notes/a.txt", "world", "there").startswith("edited")
    assert workspace.read_file("notes/a.txt") == "hello there"
    assert workspace.list_files() == "notes/"
    assert workspace.list_files("notes") == "a.txt"
    assert workspace.read_file("notes/a.txt", offset=6, limit=3).startswith("the")


@pytest.mark.parametrize("path", ["../outside.txt", "notes/../../x", "/etc/passwd", "../main2/x"])
def test_escapes_are_refused(workspace: Workspace, path: str) -> None:
    with pytest.raises(WorkspaceError, match="outside the workspace"):
        workspace.write_file(path, "x")
    with pytest.raises(WorkspaceError, match="outside the workspace"):
        workspace.read_file(path)


def test_symlink_escapes_are_refused(workspace: Workspace, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("key")
    root = workspace.ensure()
    (root / "link.txt").symlink_to(secret)
    (root / "dir").symlink_to(tmp_path)
    for path in ("link.txt", "dir/secret.txt"):
        with pytest.raises(WorkspaceError, match="outside the workspace"):
            workspace.read_file(path)
    with pytest.raises(WorkspaceError, match="outside the workspace"):
        workspace.write_file("link.txt", "overwritten")
    with pytest.raises(WorkspaceError, match="outside the workspace"):
        workspace.list_files("dir")
    assert secret.read_text() == "key"


def test_edit_needs_exactly_one_match(workspace: Workspace) -> None:
    workspace.write_file("a.txt", "x x")
    with pytest.raises(WorkspaceError, match="found 2 times"):
        workspace.edit_file("a.txt", "x", "y")
    with pytest.raises(WorkspaceError, match="not found"):
        workspace.edit_file("a.txt", "z", "y")
    with pytest.raises(WorkspaceError, match="no file"):
        workspace.edit_file("b.txt", "x", "y")


def test_huge_file_is_read_in_capped_pieces(workspace: Workspace) -> None:
    workspace.write_file("big.txt", "a" * (MAX_READ_CHARS * 3))
    text = workspace.read_file("big.txt", limit=10**9)
    assert len(text) < MAX_READ_CHARS + 200
    assert "more characters; read on with offset" in text


async def test_shell_runs_in_the_workspace_without_the_hubs_secrets(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:secret")
    root = workspace.ensure()
    out = await run_shell("pwd; env; echo done > made.txt", root, limit=30)
    assert out.startswith("exit status 0\n")
    assert str(root) in out
    assert "secret" not in out
    assert (root / "made.txt").read_text() == "done\n"


async def test_shell_reports_failure_status(workspace: Workspace) -> None:
    out = await run_shell("echo oops >&2; exit 3", workspace.ensure(), limit=30)
    assert out == "exit status 3\noops\n"


async def test_shell_output_is_capped(workspace: Workspace) -> None:
    command = "head -c 1000000 /dev/zero | tr '\\0' y"
    out = await run_shell(command, workspace.ensure(), limit=30, max_output=1000)
    assert out.split("\n")[1] == "y" * 1000
    assert "999000 more bytes of output not shown" in out


async def test_shell_timeout_kills_the_whole_process_group(workspace: Workspace) -> None:
    root = workspace.ensure()
    with pytest.raises(ShellError, match="did not finish within"):
        await run_shell("echo started; sleep 60 & echo $! > child.pid; wait", root, limit=0.5)
    child = int((root / "child.pid").read_text())
    for _ in range(2000):  # the SIGKILL is delivered at once; init reaps the orphan soon after
        if not _alive(child):
            break
        await asyncio.sleep(0.01)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"
