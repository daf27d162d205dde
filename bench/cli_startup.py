"""How long the ``taskroom`` command takes to start, next to a bare Python interpreter.

    python bench/cli_startup.py [--runs 21]

Each command runs ``--runs`` times as a fresh process, round-robin so a busy machine slows
them all alike; the table shows each one's median and fastest wall time and the median's
ratio to ``python -c pass``. ``tasks list`` runs against a port where no room listens, so it
fails fast once it has imported what a real listing needs. Target: ``taskroom --help``
under 0.3 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from bench_processes import BIN, free_port
from rich.console import Console
from rich.table import Table

TARGET_SECONDS = 0.3


def commands() -> dict[str, list[str]]:
    taskroom = str(BIN / "taskroom")
    no_room = f"http://127.0.0.1:{free_port()}"
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "taskroom --help": [taskroom, "--help"],
        "taskroom tasks list --help": [taskroom, "tasks", "list", "--help"],
        "taskroom tasks list (no room)": [
            *(taskroom, "tasks", "list", "--room", "bench", "--url", no_room, "--token", "t"),
        ],
    }


def wall_time(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def measure(runs: int) -> dict[str, list[float]]:
    todo = commands()
    for args in todo.values():  # warm the file cache and .pyc files
        wall_time(args)
    times: dict[str, list[float]] = {name: [] for name in todo}
    for _ in range(runs):
        for name, args in todo.items():
            times[name].append(wall_time(args))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    runs = parser.parse_args().runs
    times = measure(runs)
    baseline = statistics.median(times["python -c pass"])
    table = Table(title=f"CLI start-up, {runs} runs each")
    for column in ("command", "median (s)", "fastest (s)", "× python -c pass"):
        table.add_column(column, justify="left" if column == "command" else "right")
    for name, samples in times.items():
        median = statistics.median(samples)
        table.add_row(name, f"{median:.3f}", f"{min(samples):.3f}", f"{median / baseline:.1f}")
    console = Console()
    console.print(table)
    help_median = statistics.median(times["taskroom --help"])
    verdict = "met" if help_median < TARGET_SECONDS else "missed"
    console.print(f"taskroom --help: {help_median:.3f} s, target {TARGET_SECONDS} s: {verdict}")


if __name__ == "__main__":
    main()
