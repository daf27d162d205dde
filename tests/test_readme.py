"""README stays true to the code: its commands and flags exist, its Python is the example's."""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest
from typer.core import TyperGroup
from typer.testing import CliRunner

from taskroom.host.cli import COMMANDS, app, load_command
from tests.processes import ROOT

README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def cli_lines() -> list[str]:
    """Every `taskroom ...` the README shows: shell lines (continuations joined) and the
    CLI table's first column."""
    found = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("taskroom "):
                found.append(line)
    for cell in re.findall(r"^\| `(taskroom [^`]+)` \|", README, flags=re.M):
        found.append(cell.replace("\\|", "|").split("|")[0])
    return found


def command_and_flags(line: str) -> tuple[list[str], list[str]]:
    """The command path (``tasks list``) and the ``--flags`` of a README line."""
    words = shlex.split(line.replace("[", " ").replace("]", " "))[1:]
    assert words and words[0] in COMMANDS, f"{line}: no such command"
    command = [words[0]]
    loaded = load_command(words[0])
    if isinstance(loaded, TyperGroup):
        assert len(words) > 1 and words[1] in loaded.commands, f"{line}: no such sub-command"
        command.append(words[1])
    return command, [w.split("=")[0] for w in words if w.startswith("--")]


@pytest.mark.parametrize("line", cli_lines())
def test_every_command_and_flag_the_readme_shows_exists(line: str) -> None:
    command, flags = command_and_flags(line)
    result = CliRunner().invoke(
        app, [*command, "--help"], env={"COLUMNS": "200"}, prog_name="taskroom"
    )
    assert result.exit_code == 0, f"{line}: {result.output}"
    assert f"Usage: taskroom {' '.join(command)} " in result.output, line
    for flag in flags:
        assert flag in result.output, f"{line}: {flag} is not an option"


def test_the_readme_python_is_the_weather_example_s() -> None:
    (excerpt,) = blocks("python")
    assert excerpt.strip() and excerpt in (ROOT / "invoke" / "weather_example.py").read_text()


def test_make_demo_takes_a_port() -> None:
    shown = subprocess.run(
        ["make", "-n", "demo", "PORT=9123"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "taskroom up --demo --port 9123" in shown.stdout
