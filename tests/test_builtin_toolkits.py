"""The built-in toolkits (files, todo, shell), unit-level and through a real room."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
from pathlib import Path
from typing import Any

import pytest

from taskroom.agents import LLMTaskRunner, OpenAIResponsesAdapter, TaskContext, TaskRunner
from taskroom.agents.testing import ScriptedLLMServer, json_output, tool_calls
from taskroom.host.auth.tokens import create_token
from taskroom.host.client.room_client import RoomClient
from taskroom.host.protocol import ErrorCode, RoomError
from taskroom.host.protocol.messages import ParticipantInfo
from taskroom.host.server.build import build_room_server
from taskroom.toolkits import ToolContext, Toolkit
from taskroom.toolkits.builtin import files_toolkit, shell_toolkit, todo_toolkit
from taskroom.toolkits.requirements import RequiredToolkit

ALICE = ParticipantInfo(id="p_alice", name="alice", role="user")
BOB = ParticipantInfo(id="p_bob", name="bob", role="user")
SECRET = "builtin-secret-" + "x" * 32


def ctx(task_id: str | None = None, **kw: Any) -> ToolContext:
    kw.setdefault("caller", ALICE)
    return ToolContext(call_id="c_1", task_id=task_id, **kw)


async def call(
    toolkit: Toolkit, tool: str, args: dict[str, Any], context: ToolContext | None = None
):
    return await toolkit.execute(context or ctx(), tool, args)


async def refused(
    toolkit: Toolkit, tool: str, args: dict[str, Any], code: ErrorCode, **kw: Any
) -> str:
    with pytest.raises(RoomError) as info:
        await call(toolkit, tool, args, **kw)
    assert info.value.code == code, info.value.message
    return info.value.message


# --------------------------------------------------------------------------- files


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """root/{a.txt, sub/b.py, sub/deep/c.md, link -> outside/, leak.txt -> outside/secret.txt}"""
    root = tmp_path / "root"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "a.txt").write_text("one\ntwo\nthree\n")
    (root / "sub" / "b.py").write_text("import os\nprint('hi')\nPRINT = 1\n")
    (root / "sub" / "deep" / "c.md").write_text("# title\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret print\n")
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "leak.txt").symlink_to(outside / "secret.txt")
    return root


@pytest.fixture
def files(root: Path) -> Toolkit:
    return files_toolkit(root)


def test_files_annotations(files: Toolkit):
    read_only = {name for name, t in files.tools.items() if t.annotations.read_only}
    assert read_only == {"list", "read", "glob", "grep"}
    assert files.tools["write"].annotations.destructive
    assert files.tools["edit"].annotations.destructive


async def test_list(files: Toolkit, root: Path):
    listing = await call(files, "list", {})
    assert listing["path"] == "."
    assert listing["truncated"] is False
    entries = {e["path"]: e for e in listing["entries"]}
    assert list(entries) == ["a.txt", "leak.txt", "link", "sub"]
    assert entries["a.txt"] == {"path": "a.txt", "type": "file", "size": 14}
    assert entries["sub"]["type"] == "dir"
    assert entries["link"] == {"path": "link", "type": "symlink", "size": None}

    deep = await call(files, "list", {"path": "sub", "recursive": True})
    assert [e["path"] for e in deep["entries"]] == ["sub/b.py", "sub/deep", "sub/deep/c.md"]

    capped = await call(files, "list", {"recursive": True, "max_entries": 2})
    assert len(capped["entries"]) == 2 and capped["truncated"] is True

    assert "is a file" in await refused(files, "list", {"path": "a.txt"}, ErrorCode.INVALID_REQUEST)
    await refused(files, "list", {"path": "nope"}, ErrorCode.NOT_FOUND)


async def test_read(files: Toolkit, root: Path):
    whole = await call(files, "read", {"path": "a.txt"})
    assert whole["content"] == "one\ntwo\nthree\n"
    assert (whole["total_lines"], whole["size"]) == (3, 14)
    part = await call(files, "read", {"path": "a.txt", "start_line": 2, "end_line": 3})
    assert part["content"] == "two\nthree\n"
    assert (part["start_line"], part["end_line"]) == (2, 3)
    inside_absolute = await call(files, "read", {"path": str(root / "sub" / "b.py")})
    assert inside_absolute["path"] == "sub/b.py"

    (root / "ff.txt").write_text("page 1\fpage 2\nend")  # lines split at \n only
    paged = await call(files, "read", {"path": "ff.txt", "start_line": 2})
    assert (paged["content"], paged["total_lines"]) == ("end", 2)
    found = await call(files, "grep", {"pattern": "end", "path": "ff.txt"})
    assert found["matches"] == ["ff.txt:2:end"]

    await refused(files, "read", {"path": "missing.txt"}, ErrorCode.NOT_FOUND)
    assert "directory" in await refused(files, "read", {"path": "sub"}, ErrorCode.INVALID_REQUEST)
    await refused(
        files, "read", {"path": "a.txt", "start_line": 3, "end_line": 2}, ErrorCode.INVALID_REQUEST
    )
    assert "past the end" in await refused(
        files, "read", {"path": "a.txt", "start_line": 9}, ErrorCode.INVALID_REQUEST
    )


async def test_read_refuses_big_binary_and_special_files(root: Path):
    files = files_toolkit(root, max_read_bytes=10)
    message = await refused(files, "read", {"path": "a.txt"}, ErrorCode.INVALID_REQUEST)
    assert "14 bytes" in message and "read cap of 10 bytes" in message

    (root / "blob.bin").write_bytes(b"\x00\x01\x02")
    (root / "latin1.txt").write_bytes("café".encode("latin-1"))
    assert "binary" in await refused(files, "read", {"path": "blob.bin"}, ErrorCode.INVALID_REQUEST)
    assert "not UTF-8" in await refused(
        files, "read", {"path": "latin1.txt"}, ErrorCode.INVALID_REQUEST
    )
    os.mkfifo(root / "fifo")  # reading it would block forever
    assert "not a regular file" in await refused(
        files, "read", {"path": "fifo"}, ErrorCode.INVALID_REQUEST
    )


async def test_read_unreadable_file(files: Toolkit, root: Path, monkeypatch: pytest.MonkeyPatch):
    real_open = Path.open

    def deny(path: Path, *args: Any, **kw: Any) -> Any:
        if path.name == "a.txt":  # what chmod 000 does, even when the tests run as root
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kw)

    monkeypatch.setattr(Path, "open", deny)
    message = await refused(files, "read", {"path": "a.txt"}, ErrorCode.PERMISSION_DENIED)
    assert message == "cannot read a.txt: permission denied"
    assert (await call(files, "grep", {"pattern": "one"}))["files_skipped"] == 1


async def test_glob(files: Toolkit):
    assert (await call(files, "glob", {"pattern": "**/*.py"}))["matches"] == ["sub/b.py"]
    # only paths the other tools accept: leak.txt and link/* resolve outside the root
    assert (await call(files, "glob", {"pattern": "*.txt"}))["matches"] == ["a.txt"]
    assert (await call(files, "glob", {"pattern": "link/*"}))["matches"] == []
    capped = await call(files, "glob", {"pattern": "**/*", "max_results": 1})
    assert len(capped["matches"]) == 1 and capped["truncated"] is True
    assert "max_results=1" in capped["notice"]
    for outward in ("link/**", "*/**/secret.txt", "**/secret.txt", "link/*.txt"):
        assert (await call(files, "glob", {"pattern": outward}))["matches"] == []
    every = await call(files, "glob", {"pattern": "**"})
    assert every["matches"] == ["a.txt", "sub", "sub/b.py", "sub/deep", "sub/deep/c.md"]
    assert (await call(files, "glob", {"pattern": "sub/*"}))["matches"] == ["sub/b.py", "sub/deep"]
    assert (await call(files, "glob", {"pattern": "[!b]*.txt"}))["matches"] == ["a.txt"]
    assert (await call(files, "glob", {"pattern": "sub/?.py"}))["matches"] == ["sub/b.py"]
    for pattern in ("../*", "/etc/*"):
        message = await refused(files, "glob", {"pattern": pattern}, ErrorCode.PERMISSION_DENIED)
        assert "path escapes the root" in message


async def test_grep(files: Toolkit, root: Path):
    found = await call(files, "grep", {"pattern": r"print\("})
    assert found["matches"] == ["sub/b.py:2:print('hi')"]  # not the secret behind leak.txt
    loose = await call(files, "grep", {"pattern": "print", "ignore_case": True, "path": "sub"})
    assert loose["matches"] == ["sub/b.py:2:print('hi')", "sub/b.py:3:PRINT = 1"]
    assert (await call(files, "grep", {"pattern": "o", "include": "*.md"}))["matches"] == []
    capped = await call(files, "grep", {"pattern": "e", "max_matches": 2})
    assert len(capped["matches"]) == 2 and capped["truncated"] is True

    (root / "blob.bin").write_bytes(b"print\x00")
    skipped = await call(files, "grep", {"pattern": "print"})
    assert skipped["files_skipped"] == 1 and skipped["files_searched"] == 3

    message = await refused(files, "grep", {"pattern": "(unclosed"}, ErrorCode.INVALID_REQUEST)
    assert "invalid regex '(unclosed'" in message


async def test_read_cuts_long_text_with_a_notice(root: Path):
    (root / "long.txt").write_text("".join(f"line {n:03}\n" for n in range(1, 101)))
    (root / "wide.txt").write_text("x" * 500 + "\nshort\n")
    files = files_toolkit(root, max_read_chars=45)
    cut = await call(files, "read", {"path": "long.txt"})
    assert cut["truncated"] and cut["content"] == "".join(f"line {n:03}\n" for n in range(1, 6))
    assert cut["end_line"] == 5 and "read on with start_line=6" in cut["notice"]
    rest = await call(files, "read", {"path": "long.txt", "start_line": 99})
    assert not rest["truncated"] and rest["notice"] is None and rest["end_line"] == 100
    wide = await call(files, "read", {"path": "wide.txt"})
    assert wide["content"] == "x" * 45 and "line 1 is cut at 45 characters" in wide["notice"]


async def test_grep_runs_a_catastrophic_pattern_in_linear_time(root: Path):
    # (a|aa)+$ against 5,000 a's and a '!' takes a backtracking engine about 2**3470 steps;
    # on RE2 it is one linear pass, so the call returns (and says no match) at all.
    (root / "evil.txt").write_text("a" * 5_000 + "!\n" + "a" * 40 + "\n")
    files = files_toolkit(root)
    found = await asyncio.wait_for(
        call(files, "grep", {"pattern": "(a|aa)+$", "path": "evil.txt"}), 60
    )
    assert found["matches"] == ["evil.txt:2:" + "a" * 40]
    message = await refused(files, "grep", {"pattern": r"(a)\1"}, ErrorCode.INVALID_REQUEST)
    assert "RE2" in message and "backreferences" in message  # the engine really is RE2


async def test_grep_stops_a_search_past_its_time_with_what_it_found(root: Path):
    files = files_toolkit(root, grep_seconds=0)
    stopped = await call(files, "grep", {"pattern": "o"})
    assert stopped["truncated"] and stopped["files_searched"] == 0
    assert "narrow path or include" in stopped["notice"]


async def test_write_and_edit(files: Toolkit, root: Path):
    made = await call(files, "write", {"path": "new/dir/x.txt", "content": "alpha beta\n"})
    assert made == {"path": "new/dir/x.txt", "bytes": 11, "created": True}
    assert (root / "new" / "dir" / "x.txt").read_text() == "alpha beta\n"
    again = await call(files, "write", {"path": "new/dir/x.txt", "content": "a\nb\nb\n"})
    assert again["created"] is False

    edited = await call(
        files, "edit", {"path": "new/dir/x.txt", "old_text": "a\n", "new_text": "A\n"}
    )
    assert edited == {"path": "new/dir/x.txt", "bytes": 6, "line": 1}
    assert (root / "new" / "dir" / "x.txt").read_text() == "A\nb\nb\n"

    args = {"path": "new/dir/x.txt", "new_text": "z"}
    assert "not found" in await refused(
        files, "edit", {**args, "old_text": "zzz"}, ErrorCode.NOT_FOUND
    )
    assert "occurs 2 times" in await refused(
        files, "edit", {**args, "old_text": "b\n"}, ErrorCode.INVALID_REQUEST
    )
    assert "directory" in await refused(
        files, "write", {"path": "sub", "content": "x"}, ErrorCode.INVALID_REQUEST
    )
    capped = files_toolkit(root, max_write_bytes=4)
    assert "write cap of 4 bytes" in await refused(
        capped, "write", {"path": "y.txt", "content": "12345"}, ErrorCode.INVALID_REQUEST
    )
    assert not (root / "y.txt").exists()


async def test_write_and_edit_replace_a_file_whole_keeping_its_mode(files: Toolkit, root: Path):
    (root / "a.txt").chmod(0o640)
    await call(files, "write", {"path": "a.txt", "content": "uno\n"})
    await call(files, "edit", {"path": "a.txt", "old_text": "uno", "new_text": "one"})
    assert (root / "a.txt").read_text() == "one\n"
    assert (root / "a.txt").stat().st_mode & 0o777 == 0o640
    umask = os.umask(0o027)
    try:
        await call(files, "write", {"path": "new.txt", "content": "fresh\n"})
    finally:
        os.umask(umask)
    assert (root / "new.txt").stat().st_mode & 0o777 == 0o640  # 0o666 under the umask
    (root / "new.txt").unlink()
    # A write the file system refuses part way (here: over the process's file size limit)
    # leaves the old content whole and no temporary file behind.
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000, hard))
    try:
        message = await refused(
            files, "write", {"path": "a.txt", "content": "x" * 5_000}, ErrorCode.FAILED
        )
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
    assert "cannot write a.txt" in message
    assert (root / "a.txt").read_text() == "one\n"
    assert sorted(os.listdir(root)) == ["a.txt", "leak.txt", "link", "sub"]


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("read", {"path": "../outside/secret.txt"}),
        ("read", {"path": "/etc/passwd"}),
        ("read", {"path": "leak.txt"}),  # a symlink inside root pointing out
        ("read", {"path": "link/secret.txt"}),
        ("list", {"path": "link"}),
        ("list", {"path": ".."}),
        ("grep", {"pattern": "secret", "path": "link"}),
        ("write", {"path": "../x.txt", "content": "x"}),
        ("write", {"path": "link/planted.txt", "content": "x"}),
        ("edit", {"path": "leak.txt", "old_text": "secret", "new_text": "x"}),
    ],
)
async def test_path_escapes_are_refused(files: Toolkit, tmp_path: Path, tool: str, args: dict):
    message = await refused(files, tool, args, ErrorCode.PERMISSION_DENIED)
    assert "path escapes the root" in message
    assert sorted(p.name for p in (tmp_path / "outside").iterdir()) == ["secret.txt"]
    assert (tmp_path / "outside" / "secret.txt").read_text() == "secret print\n"
    assert not (tmp_path / "x.txt").exists()


# --------------------------------------------------------------------------- todo


async def test_todo_per_task(tmp_path: Path):
    todo = todo_toolkit()
    t1, t2 = ctx("t_1"), ctx("t_2")
    first = await call(todo, "add", {"text": "plan"}, t1)
    second = await call(todo, "add", {"text": "build"}, t1)
    assert (first, second["id"]) == ({"id": 1, "text": "plan", "status": "pending"}, 2)
    assert (await call(todo, "add", {"text": "other task"}, t2))["id"] == 1

    updated = await call(todo, "update", {"id": 2, "status": "in_progress", "text": "build it"}, t1)
    assert updated == {"id": 2, "text": "build it", "status": "in_progress"}
    assert (await call(todo, "complete", {"id": 1}, t1))["status"] == "done"
    listed = await call(todo, "list", {}, t1)
    assert [(i["id"], i["status"]) for i in listed["items"]] == [(1, "done"), (2, "in_progress")]
    assert [i["text"] for i in (await call(todo, "list", {}, t2))["items"]] == ["other task"]

    assert (await call(todo, "delete", {"id": 1}, t1))["text"] == "plan"
    for tool, args in [("complete", {"id": 1}), ("update", {"id": 9, "text": "x"})]:
        message = await refused(todo, tool, args, ErrorCode.NOT_FOUND, context=t1)
        assert "no todo item" in message
    await refused(todo, "update", {"id": 2}, ErrorCode.INVALID_REQUEST, context=t1)

    assert await call(todo, "clear", {}, t1) == {"cleared": 1}
    assert (await call(todo, "list", {}, t1))["items"] == []
    assert len((await call(todo, "list", {}, t2))["items"]) == 1
    assert (await call(todo, "add", {"text": "next"}, t1))["id"] == 3  # ids are never reused

    read_only = {name for name, t in todo.tools.items() if t.annotations.read_only}
    assert read_only == {"list"}


async def test_todo_scope_without_a_task():
    todo = todo_toolkit(max_items=1)
    chained = ctx(metadata={"chain": ["c_root", "c_mid"]})
    await call(todo, "add", {"text": "chain item"}, chained)
    same_chain = ctx(caller=BOB, metadata={"chain": ["c_root"]})
    assert len((await call(todo, "list", {}, same_chain))["items"]) == 1
    assert (await call(todo, "list", {}, ctx()))["items"] == []  # alice, no task, no chain
    assert "full" in await refused(
        todo, "add", {"text": "one too many"}, ErrorCode.INVALID_REQUEST, context=chained
    )


# --------------------------------------------------------------------------- shell


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers signal 0; it has exited all the same
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split(") ")[1].startswith("Z"))


async def test_shell_disabled_is_listed_but_refused(tmp_path: Path):
    shell = shell_toolkit(tmp_path)
    assert list(shell.tools) == ["run"] and shell.metadata == {"enabled": False}
    assert "Disabled" in shell.tools["run"].description
    message = await refused(shell, "run", {"command": "touch x"}, ErrorCode.PERMISSION_DENIED)
    assert message == "the shell toolkit is disabled"
    assert not (tmp_path / "x").exists()


async def test_shell_runs_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOST_API_KEY", "sk-do-not-leak")
    (tmp_path / "sub").mkdir()
    shell = shell_toolkit(tmp_path, enabled=True, max_output_bytes=100)
    assert shell.tools["run"].annotations.read_only is False
    hi = await call(shell, "run", {"command": "echo hi; echo oops >&2; exit 3"})
    assert hi == {"exit_code": 3, "stdout": "hi\n", "stderr": "oops\n"}
    where = await call(shell, "run", {"command": "pwd; echo ${HOST_API_KEY:-unset}", "cwd": "sub"})
    assert where["stdout"] == f"{(tmp_path / 'sub').resolve()}\nunset\n"
    chatty = await call(shell, "run", {"command": "head -c 5000 /dev/zero | tr '\\0' a"})
    assert chatty["stdout"].startswith("a" * 100 + "\n[stdout truncated: 4,900 more bytes")
    for cwd in ("..", "/", "../.."):
        message = await refused(
            shell, "run", {"command": "pwd", "cwd": cwd}, ErrorCode.PERMISSION_DENIED
        )
        assert "path escapes the root" in message


async def test_shell_timeout_kills_the_process_group(tmp_path: Path):
    shell = shell_toolkit(tmp_path, enabled=True, timeout=0.5)
    with pytest.raises(RoomError) as info:
        # the background sleep holds stdout open and would outlive a plain kill of the shell
        await call(shell, "run", {"command": "sleep 5 & echo $! > bg.pid; echo started; wait"})
    assert info.value.code == ErrorCode.TIMEOUT
    assert "within 0.5 s" in info.value.message
    assert info.value.details["stdout"] == "started\n"
    await asyncio.sleep(0.1)
    assert not _alive(int((tmp_path / "bg.pid").read_text()))


async def test_shell_cancellation_kills_the_process_group(tmp_path: Path):
    shell = shell_toolkit(tmp_path, enabled=True)
    running = asyncio.create_task(
        call(shell, "run", {"command": "sleep 30 & echo $! > bg.pid; wait"})
    )
    pid_file = tmp_path / "bg.pid"
    for _ in range(100):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        await asyncio.sleep(0.02)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    await asyncio.sleep(0.1)
    assert not _alive(int(pid_file.read_text()))


# --------------------------------------------------------------------------- through a room

READ_THEN_WRITE_OUTPUT = {
    "type": "object",
    "properties": {"read": {"type": "string"}, "write": {"type": "string"}},
    "required": ["read", "write"],
}


class ReadThenWrite(TaskRunner):
    """Calls the files toolkit straight through the room, bypassing any local filtering."""

    def __init__(self) -> None:
        super().__init__(name="prober", output_schema=READ_THEN_WRITE_OUTPUT)

    async def ask(self, context: TaskContext, arguments: dict[str, Any]) -> Any:
        assert context.room is not None
        # "untagged" leaves parent_call_id out, as a runner trying to escape read_only would.
        parent = None if arguments.get("untagged") else context.tool_context.call_id
        read = await context.room.invoke_tool(
            "files", "read", {"path": "notes.txt"}, parent_call_id=parent
        )
        try:
            await context.room.invoke_tool(
                "files",
                "write",
                {"path": arguments["path"], "content": "written"},
                parent_call_id=parent,
            )
        except RoomError as exc:
            return {"read": read["content"], "write": f"{exc.code.value}: {exc.message}"}
        return {"read": read["content"], "write": "ok"}


async def test_room_enforces_read_only_tasks(tmp_path: Path):
    server = build_room_server(data_dir=tmp_path / "room-data", secret=SECRET)
    await server.start("127.0.0.1", 0)
    clients: list[RoomClient] = []

    async def join(identity: str, role: str) -> RoomClient:
        token = create_token(SECRET, room="builtin", identity=identity, role=role)
        client = RoomClient(server.base_url, "builtin", token, reconnect=False)
        await client.connect()
        clients.append(client)
        return client

    root = tmp_path / "root"
    llm = ScriptedLLMServer(auto=False)
    await llm.start()
    adapter = OpenAIResponsesAdapter(
        model="scripted-model", base_url=llm.base_url, api_key="k", timeout=10.0, max_retries=0
    )
    try:
        host = await join("files-host", "tool")
        await host.host_toolkit(files_toolkit(root))
        (root / "notes.txt").write_text("hello\n")
        writer = LLMTaskRunner(
            llm_adapter=adapter, requires=[RequiredToolkit("files")], name="writer"
        )
        await writer.start(await join("writer", "agent"))
        await ReadThenWrite().start(await join("prober", "agent"))
        user = await join("alice", "user")

        # An LLM runner in a read_only task: the model is not even offered write.
        llm.script(
            tool_calls([("write", {"path": "x.txt", "content": "hi"})]),
            json_output({"result": "tried"}),
        )
        task = await user.tasks.run("writer", {"prompt": "write x.txt"}, read_only=True, timeout=15)
        assert task["status"] == "completed", task
        assert not (root / "x.txt").exists()
        bodies = [r.body for r in llm.requests if r.path == "/v1/responses"]
        offered = {t["name"] for t in bodies[0]["tools"]}
        assert "write" not in offered and "edit" not in offered and "read" in offered
        outputs = [i["output"] for i in bodies[1]["input"] if i["type"] == "function_call_output"]
        assert outputs == [
            f"error: there is no tool named 'write'; available tools: {', '.join(sorted(offered))}"
        ]

        # The room itself refuses a write nested in a read_only task, but allows reads.
        task = await user.tasks.run("prober", {"path": "y.txt"}, read_only=True, timeout=15)
        assert task["status"] == "completed", task
        assert task["result"] == {
            "read": "hello\n",
            "write": "permission_denied: files.write is not read_only and this task is read_only",
        }
        assert not (root / "y.txt").exists()

        # Leaving parent_call_id out does not escape it: the host is serving a read_only task.
        task = await user.tasks.run(
            "prober", {"path": "z.txt", "untagged": True}, read_only=True, timeout=15
        )
        assert task["status"] == "completed", task
        assert task["result"]["write"].startswith("permission_denied")
        assert not (root / "z.txt").exists()

        # The same runner in an ordinary task may write.
        task = await user.tasks.run("prober", {"path": "y.txt"}, timeout=15)
        assert task["result"] == {"read": "hello\n", "write": "ok"}
        assert (root / "y.txt").read_text() == "written"
    finally:
        for client in clients:
            await client.close()
        await adapter.aclose()
        await llm.stop()
        await server.stop()
