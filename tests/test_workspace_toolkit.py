"""The workspace toolkit and apply_patch: confinement, all-or-nothing patches, caps."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.protocol.messages import ParticipantInfo
from taskroom.toolkits import ToolContext, Toolkit
from taskroom.toolkits.builtin import workspace_toolkit

ME = ParticipantInfo(id="p_me", name="me", role="agent")


async def call(toolkit: Toolkit, tool: str, args: dict[str, Any], task: str = "t_1") -> Any:
    return await toolkit.execute(ToolContext(caller=ME, call_id="c_1", task_id=task), tool, args)


async def refused(toolkit: Toolkit, tool: str, args: dict[str, Any], code: ErrorCode) -> str:
    with pytest.raises(RoomError) as info:
        await call(toolkit, tool, args)
    assert info.value.code == code, info.value.message
    return info.value.message


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "ws"
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "app.py").write_text("def main():\n    print('hello')\n\n\nmain()\n")
    (folder / "README.md").write_text("# Demo\n\nSay hello.\n")
    (tmp_path / "secret.txt").write_text("secret\n")
    (folder / "leak").symlink_to(tmp_path / "secret.txt")
    (folder / "out").symlink_to(tmp_path)
    return folder


def patch(*body: str) -> str:
    return "\n".join(["*** Begin Patch", *body, "*** End Patch"])


def test_only_reading_tools_are_read_only(folder: Path) -> None:
    tools = workspace_toolkit(folder).tools
    read_only = {name for name, t in tools.items() if t.annotations.read_only}
    assert read_only == {
        "list",
        "read",
        "glob",
        "grep",
        *(f"todo_{n}" for n in ("add", "update", "complete", "delete", "list", "clear")),
    }
    assert {"write", "edit", "apply_patch", "shell"} <= set(tools)
    assert "shell" not in workspace_toolkit(folder, shell=False).tools


async def test_patch_adds_updates_moves_and_deletes(folder: Path) -> None:
    ws = workspace_toolkit(folder)
    done = await call(
        ws,
        "apply_patch",
        {
            "patch": patch(
                "*** Update File: src/app.py",
                "@@ def main():",
                "-    print('hello')",
                "+    print('hello, world')",
                "*** Add File: docs/notes.md",
                "+# Notes",
                "+first",
                "*** Update File: README.md",
                "*** Move to: docs/README.md",
                " # Demo",
                "",
                "-Say hello.",
                "+Say hello, world.",
            )
        },
    )
    assert [(f["path"], f["action"]) for f in done["files"]] == [
        ("src/app.py", "updated"),
        ("docs/notes.md", "added"),
        ("docs/README.md", "moved"),
    ]
    assert "print('hello, world')" in (folder / "src" / "app.py").read_text()
    assert (folder / "docs" / "notes.md").read_text() == "# Notes\nfirst\n"
    assert (folder / "docs" / "README.md").read_text() == "# Demo\n\nSay hello, world.\n"
    assert not (folder / "README.md").exists()
    await call(ws, "apply_patch", {"patch": patch("*** Delete File: docs/notes.md")})
    assert not (folder / "docs" / "notes.md").exists()


async def test_a_patch_that_does_not_apply_changes_nothing(folder: Path) -> None:
    ws = workspace_toolkit(folder)
    before = (folder / "src" / "app.py").read_text()
    bad = patch(
        "*** Update File: src/app.py",
        "-    print('hello')",
        "+    print('changed')",
        "*** Update File: README.md",
        "-Say goodbye.",
        "+Say nothing.",
    )
    message = await refused(ws, "apply_patch", {"patch": bad}, ErrorCode.INVALID_REQUEST)
    assert "hunk 1 of README.md does not match" in message and "Say goodbye." in message
    assert (folder / "src" / "app.py").read_text() == before
    for text, problem in (
        ("*** Update File: x", "must start with '*** Begin Patch'"),
        (patch("*** Add File: README.md", "+x"), "README.md already exists"),
        (patch("*** Delete File: nope.txt"), "nope.txt does not exist"),
        (patch("*** Add File: a", "+1", "*** Add File: a", "+2"), "a appears twice"),
        (patch("*** Update File: README.md", " # Demo"), "changes nothing"),
        (patch("*** Frobnicate: README.md"), "expected a file header"),
    ):
        assert problem in await refused(
            ws, "apply_patch", {"patch": text}, ErrorCode.INVALID_REQUEST
        )
    assert sorted(os.listdir(folder)) == ["README.md", "leak", "out", "src"]


async def test_patch_whitespace_drift_still_applies(folder: Path) -> None:
    ws = workspace_toolkit(folder)
    drifted = patch("*** Update File: src/app.py", "-  print('hello')   ", "+    print('hi')")
    await call(ws, "apply_patch", {"patch": drifted})
    assert "    print('hi')\n" in (folder / "src" / "app.py").read_text()


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("read", {"path": "../secret.txt"}),
        ("read", {"path": "leak"}),
        ("read", {"path": "out/secret.txt"}),
        ("write", {"path": "out/new.txt", "content": "x"}),
        ("list", {"path": "out"}),
        ("grep", {"pattern": "secret", "path": "out"}),
        ("apply_patch", {"patch": patch("*** Add File: out/new.txt", "+x")}),
        ("apply_patch", {"patch": patch("*** Delete File: leak")}),
        ("shell", {"command": "pwd", "cwd": "out"}),
    ],
)
async def test_nothing_leaves_the_folder(folder: Path, tool: str, args: dict[str, Any]) -> None:
    ws = workspace_toolkit(folder)
    assert "escapes the root" in await refused(ws, tool, args, ErrorCode.PERMISSION_DENIED)
    assert (folder.parent / "secret.txt").read_text() == "secret\n"
    assert not (folder.parent / "new.txt").exists()


async def test_big_files_are_refused_and_long_reads_cut(folder: Path) -> None:
    (folder / "big.log").write_text("x" * 2_000)
    ws = workspace_toolkit(folder, max_read_bytes=1_000, max_read_chars=20)
    assert "over this toolkit's read cap" in await refused(
        ws, "read", {"path": "big.log"}, ErrorCode.INVALID_REQUEST
    )
    cut = await call(ws, "read", {"path": "src/app.py"})
    assert cut["truncated"] and "start_line=2" in cut["notice"]


async def test_shell_is_confined_bounded_and_capped(folder: Path) -> None:
    ws = workspace_toolkit(folder, shell_timeout=0.5, max_output_bytes=1_000)
    ran = await call(ws, "shell", {"command": "pwd && ls", "cwd": "src"})
    assert ran["exit_code"] == 0 and ran["stdout"].startswith(str(folder / "src"))
    hung = await refused(ws, "shell", {"command": "sleep 30"}, ErrorCode.TIMEOUT)
    assert "did not finish within 0.5 s" in hung
    flood = await call(ws, "shell", {"command": "yes | head -c 200000"})
    assert len(flood["stdout"]) < 1_200 and "199,000 more bytes not shown" in flood["stdout"]


async def test_todo_lists_are_per_task(folder: Path) -> None:
    ws = workspace_toolkit(folder)
    await call(ws, "todo_add", {"text": "read README"}, task="t_a")
    await call(ws, "todo_add", {"text": "other"}, task="t_b")
    mine = await call(ws, "todo_list", {}, task="t_a")
    assert [i["text"] for i in mine["items"]] == ["read README"]
