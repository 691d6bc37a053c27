"""The one scoring loop: ``main.py --eval``, training's validation and ``inference.py`` all score through here,
so a file gets the same score through any of them.
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from antispoof.audio import NB_SAMP
from antispoof.data import ScoringDataset, collate_by_length
from antispoof.runtime import autocast_context, one_intra_op_thread
from models import ConfigError, WeightLoadError, build_model, load_weights


class ScoringSetupError(ValueError):
    """The model cannot be set up for scoring: no weights, a config or weight error."""


def load_scoring_model(model_config: dict, weights: str | None, device: torch.device) -> nn.Module:
    """Build the model of ``model_config``, load ``weights`` strictly, eval mode, on ``device``.

    Raises ``ScoringSetupError`` with a one-line message."""
    if not weights:
        raise ScoringSetupError(
            "no weights to score with: set model_path in the config or --eval_model_weights"
        )
    try:
        model = build_model(model_config)
        load_weights(model, weights)
    except (ConfigError, WeightLoadError) as exc:
        raise ScoringSetupError(str(exc)) from None
    return model.to(device).eval()


def load_model_for_scoring(model_config: dict, weights: str | None, device: torch.device) -> nn.Module:
    """``load_scoring_model`` for a CLI: a setup error is a one-line ``SystemExit``."""
    try:
        return load_scoring_model(model_config, weights, device)
    except ScoringSetupError as exc:
        raise SystemExit(f"error: {exc}") from None


# Models that take a waveform of any length (above their minimum) and read all of it: "full" scoring is refused
# for the others (AMSDF takes exactly nb_samp samples; the emotion models read the first 3 s of their input).
FULL_LENGTH_ARCHITECTURES = ("AASIST", "AASIST_WAV2VEC")


def full_length_problem(architecture: str) -> str | None:
    """Why ``architecture`` cannot score whole files ("full"), in one line; None when it can."""
    if architecture in FULL_LENGTH_ARCHITECTURES:
        return None
    return (
        f"{architecture or 'this model'} does not read inputs of any length (only "
        f"{', '.join(FULL_LENGTH_ARCHITECTURES)} do): use scoring 'windows'"
    )


def describe_scoring(scoring: str, nb_samp: int = NB_SAMP, hop: int | None = None) -> str:
    """One line saying how files are scored, e.g. ``windows (hop 64600): mean logit of every 64600-sample window``."""
    if scoring == "windows":
        return f"windows (hop {hop or nb_samp}): mean logit of every {nb_samp}-sample window of each file"
    if scoring == "full":
        return f"full: each whole file in one pass (files under {nb_samp} samples tile-padded)"
    return f"first: the first {nb_samp} samples of each file (--scoring windows or full reads it all)"


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    paths: Sequence[str | os.PathLike],
    nb_samp: int = NB_SAMP,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    num_workers: int = 0,
    skip_unreadable: bool = False,
    desc: str = "scoring",
    errors: list[tuple[int, str]] | None = None,
    precision: str = "fp32",
    progress: bool = True,
    scoring: str = "first",
    hop: int | None = None,
    parallel_batches: int = 0,
) -> np.ndarray:
    """Run ``model`` in eval mode over audio files: the (N, classes) logits, in file order.

    This is the one scoring loop of the project (``main.py`` and ``inference.py`` both use it). ``scoring``
    (``antispoof.data.scoring_rows``): "first" scores the first ``nb_samp`` samples of each file; "windows" every
    ``nb_samp`` window at ``hop`` (default ``nb_samp``), in batches of ``batch_size`` windows taken across files
    (so the cost follows the audio's length), a file's logits being the mean of its windows'; "full" each whole
    file, files of equal length batched together (only models in ``FULL_LENGTH_ARCHITECTURES``).

    With ``skip_unreadable`` a file that cannot be read gets a row of NaN and its (index, message) is appended to
    ``errors``; without it, the first unreadable file raises ``AudioError``. ``precision`` "bf16" runs the model
    under autocast; the logits come back in float32 either way.

    On a CPU, ``parallel_batches`` batches are scored at once, each on one thread (0: as many as torch has
    intra-op threads; 1: one batch at a time on all of them); see ``batches_at_once``. Batches are formed, and
    their logits combined, in the same order either way. The logits of AASIST and of the emotion-fusion models are
    the same to the bit (their CPU scoring does not depend on the thread count); the XLS-R models' may differ in
    the last bit, as MKL multiplies small matrices with other kernels on one thread and on several.
    """
    if scoring == "full" and (problem := full_length_problem(_architecture_of(model))):
        raise ValueError(f"scoring 'full': {problem}")
    device = torch.device(device)
    model.eval()
    loader = DataLoader(
        ScoringDataset(paths, nb_samp, skip_unreadable=skip_unreadable, scoring=scoring, hop=hop),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_by_length,
        pin_memory=device.type == "cuda",
    )
    batches = tqdm(loader, desc=desc, unit="batch", leave=False, dynamic_ncols=True, disable=not progress)
    means = LogitMeans(len(paths))
    at_once = batches_at_once(device, parallel_batches, None if scoring == "windows" else len(loader))

    def forward(waves: torch.Tensor) -> np.ndarray:
        # grad mode and autocast are per thread: set both in the thread that runs the model
        with torch.inference_mode(), autocast_context(device, precision):
            _, logits = model(waves.to(device, non_blocking=True))
        return logits.float().cpu().numpy()

    rows = model_batches(batches, batch_size, errors, regroup=scoring == "windows")
    for owners, logits in logits_in_order(forward, rows, at_once):
        means.add(owners.numpy(), logits)
    return means.result()


def batches_at_once(device: torch.device | str, requested: int = 0, n_batches: int | None = None) -> int:
    """How many batches the scoring loop runs at once: 1 off the CPU; on it ``requested``, or (0) as many as
    torch's intra-op threads, at most ``n_batches`` (when known).

    Why: AASIST-like models run thousands of small operations per batch, and each one split across threads ends
    in a barrier where the threads wait for one another (passively, see antispoof/__init__.py). One batch per
    thread, each op single-threaded, removes the waits: on the 2-core development VM, 2 batches at once score
    1.3-1.6x as many utterances per second as 1 batch on 2 threads (bench/aasist_cpu.py --parallel_batches).
    """
    if torch.device(device).type != "cpu":
        return 1
    at_once = requested or torch.get_num_threads()
    return max(1, min(at_once, n_batches) if n_batches is not None else at_once)


def logits_in_order(
    forward: Callable[[torch.Tensor], np.ndarray],
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    at_once: int = 1,
) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
    """(owners, ``forward(waves)``) for each (waves, owners) batch, in the batches' order. With ``at_once`` > 1
    and more than one batch, up to ``at_once`` batches run at once on worker threads with one intra-op thread
    each (torch's thread count is restored afterwards), while this thread loads the next batch; a single batch
    runs here on all threads, so that a run of one batch (one file, say) gets the same logits in every mode."""
    batches = iter(batches)
    first_two = list(itertools.islice(batches, 2))
    if at_once <= 1 or len(first_two) < 2:
        for waves, owners in itertools.chain(first_two, batches):
            yield owners, forward(waves)
        return
    batches = itertools.chain(first_two, batches)
    pending: deque = deque()
    with one_intra_op_thread(), ThreadPoolExecutor(at_once, thread_name_prefix="scoring") as pool:
        try:
            for waves, owners in batches:
                pending.append((owners, pool.submit(forward, waves)))
                if len(pending) >= at_once:
                    owners, future = pending.popleft()
                    yield owners, future.result()
            while pending:
                owners, future = pending.popleft()
                yield owners, future.result()
        finally:  # an error, or a caller that stopped early: do not start the batches still queued
            for _, future in pending:
                future.cancel()


def _architecture_of(model: nn.Module) -> str:
    """The registry name of a model built by ``models.build_model`` (its module ``models.<architecture>``)."""
    module = type(model).__module__
    return module.removeprefix("models.") if module.startswith("models.") else type(model).__name__


def model_batches(loader, batch_size: int, errors: list | None, regroup: bool):
    """The (rows, file index of each row) batches to run, from a loader of ``collate_by_length`` batches; the
    errors it reports are appended to ``errors``. With ``regroup`` (windows: a file gives several rows) the rows
    are re-cut into batches of exactly ``batch_size`` across files (the last may be smaller)."""
    pending: list[tuple[torch.Tensor, torch.Tensor]] = []
    for groups, batch_errors in loader:
        if errors is not None:
            errors.extend(batch_errors)
        if not regroup:
            yield from groups
            continue
        pending.extend(groups)
        while sum(len(owners) for _, owners in pending) >= batch_size:
            batch, pending = _split_rows(pending, batch_size)
            yield batch
    if pending:
        yield _split_rows(pending, sum(len(owners) for _, owners in pending))[0]


def _split_rows(pieces: list, n_rows: int):
    """(the first ``n_rows`` rows of ``pieces`` as one batch, the pieces left); each row is copied once."""
    taken, left = [], list(pieces)
    while n_rows > 0:
        waves, owners = left.pop(0)
        if len(owners) > n_rows:  # split the piece: the rest stays in front
            left.insert(0, (waves[n_rows:], owners[n_rows:]))
            waves, owners = waves[:n_rows], owners[:n_rows]
        taken.append((waves, owners))
        n_rows -= len(owners)
    batch = tuple(torch.cat(parts) for parts in zip(*taken))
    return batch, left


class LogitMeans:
    """Per-file mean of the logits of its rows (one row per file unless scoring by windows); NaN for a file with
    none (unreadable). Sums are kept in float64, so a file of one row gets its logits back exactly."""

    def __init__(self, n_files: int):
        self.n_files = n_files
        self.sums: np.ndarray | None = None
        self.counts = np.zeros(n_files, dtype=np.int64)

    def add(self, owners: np.ndarray, logits: np.ndarray) -> None:
        if self.sums is None:
            self.sums = np.zeros((self.n_files, logits.shape[1]), dtype=np.float64)
        np.add.at(self.sums, owners, logits)
        np.add.at(self.counts, owners, 1)

    def result(self) -> np.ndarray:
        if self.sums is None:
            return np.full((self.n_files, 2), np.nan, dtype=np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = self.sums / self.counts[:, None]
        means[self.counts == 0] = np.nan
        return means.astype(np.float32)


@dataclass
class FileScores:
    """The score (bona fide logit) of each file, NaN where it has none, and why it has none (index -> line)."""

    scores: np.ndarray
    problems: dict[int, str]  # unreadable files, and files with a non-finite score
    non_finite: list[int]  # readable files whose score came out NaN or infinite

    @property
    def model_broken(self) -> bool:
        """Every file the model saw gave a non-finite score: the weights, not the audio, are at fault (then the
        non-finite files are not in ``problems``: the caller says it once)."""
        readable = len(self.scores) - len(set(self.problems) - set(self.non_finite))
        return readable > 0 and len(self.non_finite) == readable


def score_files(
    model: nn.Module,
    paths: Sequence[str | os.PathLike],
    batch_size: int = 8,
    num_workers: int = 0,
    **loop_options,
) -> FileScores:
    """Score each file through ``predict_logits`` (``loop_options`` go to it); an unreadable file or a non-finite
    score is a problem line naming the file, and the other files are still scored.

    DataLoader workers are capped at the number of batches (none for one batch) and of usable cores: one file
    needs no worker process, and more workers than cores only slow a run down (and torch warns about it)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    batches = -(-len(paths) // batch_size)
    num_workers = max(0, min(num_workers, cores, batches if batches > 1 else 0))
    errors: list[tuple[int, str]] = []
    logits = predict_logits(
        model,
        paths,
        batch_size=batch_size,
        num_workers=num_workers,
        skip_unreadable=True,
        errors=errors,
        **loop_options,
    )
    scores = logits[:, 1]
    problems = dict(errors)
    non_finite = [i for i, score in enumerate(scores) if i not in problems and not np.isfinite(score)]
    result = FileScores(scores, problems, non_finite)
    if not result.model_broken:  # a broken model is one line for the caller, not one per file
        problems.update((i, f"{paths[i]}: the model's score is not finite ({scores[i]})") for i in non_finite)
    return result
