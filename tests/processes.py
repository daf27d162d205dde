"""Start real room servers and agent processes for tests, and stop them for sure."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not come up within {timeout} s")
        time.sleep(0.1)


class Process:
    """A child process in its own session, killed with its children at stop()."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, log: Path | None = None):
        self.log = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to say goodbye."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.log is not subprocess.DEVNULL:
            self.log.close()


def start_room(port: int, data_dir: Path, secret: str, log: Path | None = None) -> Process:
    proc = Process(
        [str(BIN / "taskroom"), "room", "serve", "--port", str(port), "--data-dir", str(data_dir)],
        env={"TASKROOM_SECRET": secret},
        log=log,
    )
    wait_http(f"http://127.0.0.1:{port}/healthz")
    return proc


def start_agent(
    url: str,
    room: str,
    token: str,
    llm_base_url: str,
    *,
    concurrency: int = 16,
    log: Path | None = None,
) -> Process:
    """An LLMTaskRunner in its own process, joined to ``room`` directly."""
    return Process(
        [
            sys.executable,
            str(ROOT / "tests" / "agent_process.py"),
            url,
            room,
            token,
            llm_base_url,
            str(concurrency),
        ],
        log=log,
    )
