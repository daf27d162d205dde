"""The CLI as a user runs it: `taskroom up` in a folder, then commands and the weather
example as separate processes, with the scripted LLM `taskroom up` falls back to."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from taskroom.host.auth.tokens import create_token, load_secret
from taskroom.host.constants import LOCAL_USER
from tests.processes import BIN, ROOT, free_port, wait_http

TASKROOM = str(BIN / "taskroom")
ROOM = "myroom"


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user with no taskroom or LLM settings, on an 80-column terminal."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TASKROOM_") and k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")
    }
    return {**env, "COLUMNS": "80", **extra}


def taskroom(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TASKROOM, *args],
        cwd=cwd,
        env=user_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """Assert the command failed the CLI way: non-zero, one `error:` line, nothing else."""
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@dataclass
class Up:
    folder: Path
    port: int
    token: str
    banner: str
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self, *args: str, **kw) -> subprocess.CompletedProcess[str]:
        """A command run in the folder `taskroom up` runs in, against its room."""
        return taskroom(*args, "--room", ROOM, "--url", self.url, cwd=self.folder, **kw)


@contextlib.contextmanager
def running_up(folder: Path, *args: str) -> Iterator[Up]:
    """`taskroom up` run in ``folder`` on a free port until it says it is serving."""
    port = free_port()
    log = folder.parent / f"up-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [TASKROOM, "up", "--port", str(port), *args],
            cwd=folder,
            env=user_env(),
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while "serving" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        banner = log.read_text()
        token = re.search(r"TASKROOM_TOKEN=(\S+)", banner)
        assert token is not None, banner
        yield Up(folder, port, token.group(1), banner, proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    folder = tmp_path_factory.mktemp("project")
    (folder / "notes.md").write_text("# Notes\n")
    with running_up(folder) as started:
        yield started


# --- taskroom up -------------------------------------------------------------------------


def test_up_banner_keeps_urls_whole_on_an_80_column_terminal(up: Up) -> None:
    lines = up.banner.splitlines()
    assert f"room        {up.url}/rooms/{ROOM}" in lines
    assert f"studio      {up.url}/studio?room={ROOM}#token={up.token}" in lines
    agents = next(line for line in lines if line.startswith("agents"))
    assert agents.split(None, 1)[1].split(", ") == [
        "llm-task-runner",
        "dynamic-llm-task-runner",
        "workspace-task-runner",
    ]
    assert f"workspace   {up.folder.resolve()}" in lines
    assert "scripted test LLM" in up.banner


def test_up_starts_the_workspace_runner_over_its_folder(up: Up) -> None:
    result = up.run("invoke", "workspace-task-runner", "--prompt", "What is here?", "--read-only")
    assert result.returncode == 0, result.stderr
    assert "workspace-task-runner.workspace.list done" in result.stderr


def test_up_no_shell_leaves_the_shell_out_of_the_workspace_runner(up: Up, tmp_path: Path) -> None:
    # The scripted LLM calls every tool it is offered once: the default room offers shell
    # to a task that is not read_only, `up --no-shell` does not.
    offered = up.run("invoke", "workspace-task-runner", "--prompt", "Tidy up")
    assert offered.returncode == 0, offered.stderr
    assert "workspace-task-runner.workspace.shell" in offered.stderr
    project = tmp_path / "project"
    project.mkdir()
    with running_up(project, "--no-shell") as no_shell:
        result = no_shell.run("invoke", "workspace-task-runner", "--prompt", "Tidy up")
    assert result.returncode == 0, result.stderr
    assert "workspace-task-runner.workspace.write done" in result.stderr
    assert "workspace.shell" not in result.stderr


# --- item 1: the weather example ----------------------------------------------------------


def test_the_weather_example_runs_as_is_and_its_tool_is_called(up: Up) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "invoke" / "weather_example.py"), "--url", up.url],
        cwd=up.folder,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["weather_asked"], printed  # the example's own tool host answered
    assert "Oslo" in printed["result"]["result"]
    status = up.run("tasks", "status", printed["task_id"])
    assert status.returncode == 0, status.stderr
    task = json.loads(status.stdout)
    assert task["agent"] == "weather-task-runner"
    assert task["caller"]["name"] == LOCAL_USER
    called = [e["data"] for e in task["events"] if e["data"]["kind"] == "tool.started"]
    assert [(c["toolkit"], c["tool"]) for c in called] == [("weather", "weather")]


def test_the_weather_example_says_why_it_cannot_run(up: Up, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "invoke" / "weather_example.py"), "--url", up.url],
        cwd=tmp_path,  # no data folder here: no secret to mint tokens with
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "secret" in result.stderr and "Traceback" not in result.stderr


# --- item 9: --no-wait, item 5: who sees which task ----------------------------------------


def test_no_wait_prints_the_task_id_alone(up: Up) -> None:
    started = up.run("invoke", "llm-task-runner", "--prompt", "detached", "--no-wait")
    assert started.returncode == 0, started.stderr
    task_id = started.stdout.strip()
    assert re.fullmatch(r"t_[\w-]+", task_id), started.stdout
    waited = up.run("tasks", "wait", task_id)
    assert json.loads(waited.stdout)["tasks"][0]["status"] == "completed"


def test_the_cli_without_a_token_and_up_s_token_are_one_local_user(up: Up) -> None:
    started = up.run("invoke", "llm-task-runner", "--prompt", "mine", "--no-wait")
    task_id = started.stdout.strip()
    listed = up.run("tasks", "list", "--json", env={"TASKROOM_TOKEN": up.token})
    assert task_id in [t["id"] for t in json.loads(listed.stdout)["tasks"]]
    secret = load_secret(up.folder / ".taskroom", create=False)
    bob = create_token(secret, room=ROOM, identity="bob")
    listed_by_bob = up.run("tasks", "list", "--json", "--token", bob)
    assert task_id not in [t["id"] for t in json.loads(listed_by_bob.stdout)["tasks"]]


def test_tasks_list_is_a_table_with_one_line_per_task(up: Up) -> None:
    up.run("invoke", "llm-task-runner", "--prompt", "listed")
    records = json.loads(up.run("tasks", "list", "--json", "--limit", "3").stdout)["tasks"]
    table = up.run("tasks", "list", "--limit", "3")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.strip().splitlines()
    assert lines[0].split() == ["ID", "AGENT", "MODEL", "STATUS", "CREATED", "RESULT"]
    assert [line.split()[0] for line in lines[1:]] == [t["id"] for t in records]


# --- item 7: batches -----------------------------------------------------------------------


def test_a_batch_prints_its_ids_and_keeps_progress_prefixes(up: Up) -> None:
    result = up.run(
        "invoke", "llm-task-runner", "--prompt", "batch", "--read-only",
        "--models", "m-one", "--models", "m-two",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["batch_id"]
    assert [t["model"] for t in printed["tasks"]] == ["m-one", "m-two"]
    assert all(t["status"] == "completed" and t["result"] for t in printed["tasks"])
    for task in printed["tasks"]:
        assert f"[{task['task_id'][:10]}] model turn" in result.stderr


# --- item 10: clear refusals ---------------------------------------------------------------


def test_an_unknown_agent_error_lists_the_agents_there(up: Up) -> None:
    line = one_error_line(up.run("invoke", "no-such-runner", "--prompt", "x"))
    assert "no-such-runner" in line
    assert "dynamic-llm-task-runner, llm-task-runner, workspace-task-runner" in line


def test_output_schema_on_a_fixed_schema_runner_points_to_the_dynamic_one(
    up: Up, tmp_path: Path
) -> None:
    schema = tmp_path / "plan.schema.json"
    schema.write_text('{"type": "object"}')
    line = one_error_line(
        up.run("invoke", "llm-task-runner", "--prompt", "x", "--output-schema", str(schema))
    )
    assert "dynamic-llm-task-runner" in line
    (tmp_path / "list.json").write_text("[1, 2]")
    bad_schema = one_error_line(
        up.run("invoke", "dynamic-llm-task-runner", "--prompt", "x", "--output-schema",
               str(tmp_path / "list.json"))
    )  # fmt: skip
    assert "invalid input" in bad_schema and "fixed output schema" not in bad_schema
    dynamic = up.run(
        "invoke", "dynamic-llm-task-runner", "--prompt", "x", "--output-schema", str(schema)
    )
    assert dynamic.returncode == 0, dynamic.stderr


# --- item 6: URL forms and busy ports --------------------------------------------------------


@pytest.mark.parametrize("form", ["127.0.0.1:{port}", "http://127.0.0.1:{port}/rooms/myroom"])
def test_the_url_may_lack_a_scheme_or_be_the_room_url_the_banner_prints(up: Up, form: str) -> None:
    result = taskroom(
        "tasks", "list", "--room", ROOM, "--url", form.format(port=up.port), cwd=up.folder
    )
    assert result.returncode == 0, result.stderr


def test_a_url_that_is_no_room_server_is_one_error_line(up: Up) -> None:
    result = taskroom("tasks", "list", "--room", ROOM, "--url", "ftp://x", cwd=up.folder)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "not a room server URL" in result.stderr


@pytest.mark.parametrize(
    "command",
    [["room", "serve"], ["llm", "serve-test"], ["up"]],
    ids=["room serve", "llm serve-test", "up"],
)
def test_a_busy_port_is_one_error_line(up: Up, tmp_path: Path, command: list[str]) -> None:
    result = taskroom(*command, "--port", str(up.port), cwd=tmp_path, timeout=60)
    line = one_error_line(result)
    assert f"127.0.0.1:{up.port}" in line and "already in use" in line


# --- item 2: Ctrl-C cancels, --detach does not -------------------------------------------------


@pytest.fixture
def slow_room(up: Up, tmp_path: Path) -> Iterator[str]:
    """Room "slow" on up's server, with an llm-task-runner whose LLM takes minutes."""
    llm_port = free_port()
    llm = subprocess.Popen(
        [TASKROOM, "llm", "serve-test", "--port", str(llm_port), "--latency", "300"],
        env=user_env(),
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    secret = load_secret(up.folder / ".taskroom", create=False)
    token = create_token(secret, room="slow", identity="slow-runner", role="agent")
    log = tmp_path / "agent.log"
    with open(log, "wb") as out:
        agent = subprocess.Popen(
            [
                sys.executable, str(ROOT / "tests" / "agent_process.py"), up.url, "slow", token,
                f"http://127.0.0.1:{llm_port}/v1", "4",
            ],
            cwd=ROOT, env=user_env(), stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{llm_port}/v1/models")
        deadline = time.monotonic() + 60
        while "ready" not in log.read_text():
            assert agent.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield "slow"
    finally:
        for proc in (agent, llm):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def start_invoke(up: Up, room: str, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """`taskroom invoke` on ``room``; returns the process and the task id it announced."""
    proc = subprocess.Popen(
        [TASKROOM, "invoke", "llm-task-runner", "--room", room, "--url", up.url,
         "--prompt", "take your time", *extra],
        cwd=up.folder, env=user_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    line = proc.stderr.readline()
    found = re.match(r"task (t_[\w-]+) started on llm-task-runner", line)
    assert found, line + proc.stderr.read()
    return proc, found.group(1)


def task_status(up: Up, room: str, task_id: str) -> str:
    result = taskroom("tasks", "status", task_id, "--room", room, "--url", up.url, cwd=up.folder)
    return json.loads(result.stdout)["status"]


def test_ctrl_c_on_invoke_cancels_the_task_and_says_so(up: Up, slow_room: str) -> None:
    proc, task_id = start_invoke(up, slow_room)
    deadline = time.monotonic() + 30
    while task_status(up, slow_room, task_id) != "running":  # its LLM call is under way
        assert time.monotonic() < deadline
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert out == ""
    assert f"cancelled task {task_id}" in err and "Traceback" not in err
    assert task_status(up, slow_room, task_id) == "cancelled"


def test_detach_leaves_the_task_running(up: Up, slow_room: str) -> None:
    result = taskroom(
        "invoke", "llm-task-runner", "--room", slow_room, "--url", up.url,
        "--prompt", "keep going", "--detach", cwd=up.folder,
    )  # fmt: skip
    task_id = result.stdout.strip()
    assert re.fullmatch(r"t_[\w-]+", task_id), result.stderr
    time.sleep(1)
    assert task_status(up, slow_room, task_id) in ("pending", "running")
    taskroom("tasks", "cancel", task_id, "--room", slow_room, "--url", up.url, cwd=up.folder)


# --- item 3: one data-folder rule; only the room creates the secret ---------------------------


def test_token_generate_in_another_folder_creates_no_secret(tmp_path: Path) -> None:
    result = taskroom("token", "generate", "--room", ROOM, "--identity", "x", cwd=tmp_path)
    line = one_error_line(result)
    assert "secret" in line and "--data-dir" in line
    assert list(tmp_path.iterdir()) == []


def test_the_data_dir_comes_from_the_flag_then_the_environment(up: Up, tmp_path: Path) -> None:
    data = str(up.folder / ".taskroom")
    elsewhere = dict(cwd=tmp_path)
    by_env = taskroom("token", "generate", "--room", ROOM, "--identity", "e",
                      env={"TASKROOM_DATA_DIR": data}, **elsewhere)  # fmt: skip
    assert by_env.returncode == 0, by_env.stderr
    accepted = taskroom(
        "tasks",
        "list",
        "--room",
        ROOM,
        "--url",
        up.url,
        "--token",
        by_env.stdout.strip(),
        **elsewhere,
    )
    assert accepted.returncode == 0, accepted.stderr
    for command in (["tasks", "list"], ["toolkits", "list"], ["schemas", "list"]):
        via_env = taskroom(*command, "--room", ROOM, "--url", up.url,
                           env={"TASKROOM_DATA_DIR": data}, **elsewhere)  # fmt: skip
        assert via_env.returncode == 0, via_env.stderr
        flag_first = taskroom(*command, "--room", ROOM, "--url", up.url, "--data-dir", data,
                              env={"TASKROOM_DATA_DIR": str(tmp_path / "none")}, **elsewhere)  # fmt: skip
        assert flag_first.returncode == 0, flag_first.stderr
    assert list(tmp_path.iterdir()) == []


DATA_DIR_COMMANDS = [
    ["invoke"], ["tasks", "list"], ["tasks", "status"], ["tasks", "result"], ["tasks", "wait"],
    ["tasks", "cancel"], ["toolkits", "list"], ["tools", "invoke"], ["schemas", "list"],
    ["schemas", "get"], ["schemas", "put"], ["schemas", "rm"], ["token", "generate"],
    ["room", "serve"], ["up"], ["init"], ["mcp"],
]  # fmt: skip


@pytest.mark.parametrize("command", DATA_DIR_COMMANDS, ids=" ".join)
def test_every_command_takes_the_data_dir_by_flag_or_environment(
    command: list[str], tmp_path: Path
) -> None:
    result = taskroom(*command, "--help", cwd=tmp_path, env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "--data-dir" in result.stdout and "TASKROOM_DATA_DIR" in result.stdout


def test_init_creates_the_secret_once(tmp_path: Path) -> None:
    first = taskroom("init", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    secret = (tmp_path / ".taskroom" / "secret.key").read_text()
    again = taskroom("init", cwd=tmp_path)
    assert again.returncode == 0 and "already" in again.stderr
    assert (tmp_path / ".taskroom" / "secret.key").read_text() == secret
    minted = taskroom("token", "generate", "--room", ROOM, "--identity", "x", cwd=tmp_path)
    assert minted.returncode == 0, minted.stderr


# --- item 10: help and version ----------------------------------------------------------------


def test_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    result = taskroom("--version", cwd=tmp_path)
    assert result.stdout.strip() == f"taskroom {version('taskroom')}"


@pytest.mark.parametrize(
    "command", [["invoke"], ["up"], ["room", "serve"], ["tasks", "wait"]], ids=" ".join
)
def test_flags_show_neither_bool_labels_nor_no_twins(command: list[str], tmp_path: Path) -> None:
    shown = taskroom(*command, "--help", cwd=tmp_path).stdout
    assert "<bool>" not in shown and "--no-read-only" not in shown and "--no-demo" not in shown


def test_the_studio_files_are_declared_package_data() -> None:
    import fnmatch
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "taskroom.host.studio" in config["packages"]
    patterns = config["package-data"]["taskroom.host.studio"]
    shipped = [p.name for p in (ROOT / "host" / "studio").iterdir() if p.is_file()]
    assert shipped and all(any(fnmatch.fnmatch(n, p) for p in patterns) for n in shipped)


def test_the_demo_prompts_come_back_whole_in_the_scripted_answers() -> None:
    from taskroom.agents.demo import DEMO_TASKS
    from taskroom.agents.testing.sampler import answer_sentence

    for arguments in DEMO_TASKS.values():
        assert answer_sentence(arguments["prompt"]).endswith(arguments["prompt"])


@pytest.mark.parametrize(
    ("given", "base"),
    [
        ("127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("http://127.0.0.1:8765/", "http://127.0.0.1:8765"),
        ("http://127.0.0.1:8765/rooms/myroom", "http://127.0.0.1:8765"),
        ("ws://example.com:9000/rooms/r", "http://example.com:9000"),
        ("wss://example.com/taskroom/rooms/r", "https://example.com/taskroom"),
    ],
)
def test_url_forms_come_to_the_server_base(given: str, base: str) -> None:
    from taskroom.host.cli.common import normalize_url

    assert normalize_url(given) == base


@pytest.mark.parametrize("given", ["ftp://example.com", "http://", "127.0.0.1:port"])
def test_urls_that_name_no_server_are_refused(given: str) -> None:
    import typer

    from taskroom.host.cli.common import normalize_url

    with pytest.raises(typer.BadParameter):
        normalize_url(given)
