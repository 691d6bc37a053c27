"""Whole-process contenders for the CPU benchmarks: each one in its own worker process, timed in alternating
rounds.

A contender is a name, a builder (run in the worker: it loads its model, warms it up and returns the function to
time) and its process settings. Separate processes matter because process-wide settings are part of what a user
runs: the project's scripts let glibc keep freed memory for reuse (``antispoof.runtime.keep_freed_memory``), the
original code does not, and in one shared process either both or neither would have it. So the benchmarks time
three contenders:

  project                      the project's code under the project's process settings (as its scripts run)
  reference                    the original code as its users run it (glibc's default allocator behaviour)
  reference, project settings  the original code under the project's process settings: its ratio to the
                               project is what the model code alone gains

All workers share the OpenMP wait policy, which must be fixed before torch loads (``antispoof/__init__.py`` sets
it passive; GOMP_SPINCOUNT=300000 in the environment restores libgomp's default spinning, for comparison). Rounds
alternate between the workers so that load from other processes hits them alike; the best round of each counts.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

# the package first, as the scripts import it: it sets the OpenMP wait policy before torch loads
# isort: off
import antispoof  # noqa: F401
import torch

# isort: on
import models
from antispoof.runtime import keep_freed_memory

PROJECT = "project"
REFERENCE = "reference"
REFERENCE_PROJECT_SETTINGS = "reference, project settings"


@dataclass(frozen=True)
class Contender:
    name: str
    build: Callable[[], Callable]  # picklable; in the worker: returns run(task) -> output
    keep_heap: bool  # the project's allocator setting


def import_file(name: str, path: Path):
    """A module of the reference checkout, imported by file path."""
    if not path.is_file():
        raise SystemExit(f"{path}: not found; --reference must be a checkout of clovaai/aasist")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def three_contenders(build: Callable, reference: str | None) -> list[Contender]:
    """The project, and with a ``reference`` checkout the reference twice (see the module docstring);
    ``build(source)`` is the worker-side builder, ``source`` being PROJECT or the checkout's path."""
    chosen = [Contender(PROJECT, partial(build, PROJECT), keep_heap=True)]
    if reference:
        reference_build = partial(build, str(Path(reference).resolve()))
        chosen.append(Contender(REFERENCE, reference_build, keep_heap=False))
        chosen.append(Contender(REFERENCE_PROJECT_SETTINGS, reference_build, keep_heap=True))
    return chosen


def load_aasist(source: str, model_config: dict, weights: Path) -> torch.nn.Module:
    """In a worker: the project's AASIST (``source`` PROJECT) or the reference checkout's ``models/AASIST.py``,
    with ``weights`` loaded strictly, in eval mode."""
    if source == PROJECT:
        model = models.build_model(model_config)
    else:
        model = import_file("reference_aasist", Path(source) / "models" / "AASIST.py").Model(
            dict(model_config)
        )
    return models.load_weights(model, models.load_state_dict(weights), what=str(weights)).eval()


def _serve(connection, contender: Contender, threads: int) -> None:
    if contender.keep_heap:
        keep_freed_memory()
    if threads:
        torch.set_num_threads(threads)
    run = contender.build()
    connection.send(torch.get_num_threads())
    while (command := connection.recv())[0] == "run":
        task = command[1]
        started = time.perf_counter()
        output = run(task)
        connection.send((time.perf_counter() - started, output))


class Workers:
    """One worker process per contender; ``best(task, rounds)`` times the task in each, rounds alternating."""

    def __init__(self, contenders: list[Contender], threads: int = 0):
        context = multiprocessing.get_context("spawn")
        self.connections, self.processes = {}, []
        for contender in contenders:
            ours, theirs = context.Pipe()
            process = context.Process(target=_serve, args=(theirs, contender, threads), daemon=True)
            process.start()
            self.connections[contender.name] = ours
            self.processes.append(process)
        self.threads = {name: connection.recv() for name, connection in self.connections.items()}

    def best(self, task, rounds: int) -> tuple[dict[str, float], dict]:
        """Best wall time of each contender over ``rounds`` alternating rounds, and each one's output."""
        best, outputs = dict.fromkeys(self.connections, float("inf")), {}
        for _ in range(rounds):
            for name, connection in self.connections.items():
                connection.send(("run", task))
                seconds, outputs[name] = connection.recv()
                best[name] = min(best[name], seconds)
        return best, outputs

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        for connection in self.connections.values():
            connection.send(("stop",))
        for process in self.processes:
            process.join(timeout=30)


def report_ratios(best: dict[str, float]) -> list[str]:
    """The project's speed-up over each reference contender, one line each."""
    lines = []
    for name, label in ((REFERENCE, "as its users run it"), (REFERENCE_PROJECT_SETTINGS, "same settings")):
        if name in best:
            lines.append(f"speedup over {name} ({label}): {best[name] / best[PROJECT]:.2f}x")
    return lines
