"""Batches scored at once on a CPU (antispoof.scoring.logits_in_order): the logits of one batch at a time (AASIST's
to the bit: its CPU scoring does not depend on the thread count), in order, each batch on its own thread under the
caller's inference mode and autocast."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from corpus import voice
from torch import nn

import inference
from antispoof.score_table import read_score_table
from antispoof.scoring import batches_at_once, load_scoring_model, logits_in_order, predict_logits
from tests.conftest import REPO_ROOT

AASIST_CONFIG = REPO_ROOT / "config" / "AASIST.conf"
OFFICIAL_WEIGHTS = REPO_ROOT / "models" / "weights" / "AASIST.pth"


@pytest.fixture(scope="module")
def official_aasist():
    """The shipped official AASIST: the fast CPU path, the model users score with."""
    config = json.loads(AASIST_CONFIG.read_text())
    return load_scoring_model(config["model_config"], str(OFFICIAL_WEIGHTS), torch.device("cpu"))


def write_files(folder: Path, seconds: list[float]) -> list[Path]:
    paths = []
    for i, duration in enumerate(seconds):
        path = folder / f"utt{i}.wav"
        sf.write(path, voice(np.random.default_rng(i), duration, spoof=bool(i % 2)), 16000)
        paths.append(path)
    return paths


@pytest.mark.parametrize("scoring", ["first", "windows"])
def test_batches_at_once_give_the_logits_of_one_batch_at_a_time(official_aasist, tmp_path, scoring):
    paths = write_files(tmp_path, [4.2, 5.0, 4.5, 9.0, 4.1])  # 5 files: 3 batches of 2 (windows: 4 batches)
    threads = torch.get_num_threads()
    one_at_a_time = predict_logits(
        official_aasist, paths, batch_size=2, scoring=scoring, parallel_batches=1, progress=False
    )
    for at_once in (2, 3):
        logits = predict_logits(
            official_aasist, paths, batch_size=2, scoring=scoring, parallel_batches=at_once, progress=False
        )
        np.testing.assert_array_equal(logits, one_at_a_time, err_msg=str(at_once))
        assert torch.get_num_threads() == threads  # the process-wide setting is restored
    assert np.isfinite(one_at_a_time).all() and len(np.unique(one_at_a_time[:, 1])) == len(paths)


def numbered_batches(n: int):
    return [(torch.full((1, 4), float(k)), torch.tensor([k])) for k in range(n)]


def test_logits_come_back_in_order_while_batches_run_at_once():
    both_running = threading.Barrier(2, timeout=10)  # broken unless batches 0 and 1 run at the same time
    seen_threads = {}

    def forward(waves):
        k = int(waves[0, 0])
        seen_threads[k] = (threading.get_ident(), torch.get_num_threads())
        if k < 2:
            both_running.wait()
        if k == 0:
            time.sleep(0.2)  # the first batch finishes last
        return waves[:, :2].numpy() * 10

    results = list(logits_in_order(forward, numbered_batches(5), at_once=2))
    assert [int(owners[0]) for owners, _ in results] == [0, 1, 2, 3, 4]
    assert [float(logits[0, 0]) for _, logits in results] == [0.0, 10.0, 20.0, 30.0, 40.0]
    assert seen_threads[0][0] != seen_threads[1][0] != threading.get_ident()
    assert {n for _, n in seen_threads.values()} == {1}  # each batch on one intra-op thread


def test_a_single_batch_runs_on_the_callers_thread_with_all_threads():
    """A run of one batch (one file, say) keeps every intra-op thread: its logits then do not depend on the mode
    (tests/test_windows_scoring.py: one window scored by windows equals first, to the bit)."""
    seen = []

    def forward(waves):
        seen.append((threading.get_ident(), torch.get_num_threads()))
        return waves.numpy()

    assert len(list(logits_in_order(forward, numbered_batches(1), at_once=2))) == 1
    assert seen == [(threading.get_ident(), torch.get_num_threads())]


def test_an_error_in_a_batch_reaches_the_caller_and_the_queue_stops():
    ran = []

    def forward(waves):
        k = int(waves[0, 0])
        ran.append(k)
        if k == 1:
            raise RuntimeError("batch 1 broke")
        time.sleep(0.05)
        return waves.numpy()

    threads = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="batch 1 broke"):
        list(logits_in_order(forward, numbered_batches(20), at_once=2))
    assert len(ran) < 20
    assert torch.get_num_threads() == threads


class Recorder(nn.Module):
    """Records, for each batch, the grad and autocast state and the thread count the model runs under."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(16000, 2)
        self.states = []

    def forward(self, x):
        self.states.append(
            (torch.is_inference_mode_enabled(), torch.is_autocast_enabled("cpu"), torch.get_num_threads())
        )
        return None, self.layer(x)


@pytest.mark.parametrize("precision, autocast", [("fp32", False), ("bf16", True)])
def test_each_batch_runs_in_inference_mode_under_the_runs_precision(tmp_path, precision, autocast):
    paths = write_files(tmp_path, [1.0] * 6)
    model = Recorder()
    logits = predict_logits(
        model, paths, nb_samp=16000, batch_size=2, precision=precision, parallel_batches=2, progress=False
    )
    assert logits.dtype == np.float32 and logits.shape == (6, 2)
    assert model.states == [(True, autocast, 1)] * 3


def test_how_many_batches_run_at_once():
    threads = torch.get_num_threads()
    assert batches_at_once("cpu") == threads  # default: one per intra-op thread
    assert batches_at_once("cpu", 3) == 3
    assert batches_at_once("cpu", 3, n_batches=2) == 2  # never more than there are batches
    assert batches_at_once("cpu", 0, n_batches=1) == 1  # one batch keeps all threads
    assert batches_at_once("cuda", 4) == 1  # a GPU runs one batch at a time


def test_inference_scores_the_same_table_one_batch_at_a_time(tmp_path):
    folder = tmp_path / "audio"
    folder.mkdir()
    write_files(folder, [4.1, 4.3, 4.2, 4.6, 4.0])
    tables = {}
    for at_once in ("1", "2"):
        output = tmp_path / f"scores_{at_once}.txt"
        argv = ["--config", str(AASIST_CONFIG), "--test_dir", str(folder), "--device", "cpu"]
        argv += ["--batch_size", "2", "--output_file", str(output), "--parallel_batches", at_once]
        assert inference.main(argv) == 0
        tables[at_once] = read_score_table(output)
    assert (
        [row["path"] for row in tables["1"]]
        == [row["path"] for row in tables["2"]]
        == [f"utt{i}.wav" for i in range(5)]
    )
    scores = {at_once: [float(row["score"]) for row in table] for at_once, table in tables.items()}
    assert scores["2"] == scores["1"]


def test_a_negative_parallel_batches_is_a_usage_error_naming_the_option(tmp_path, capsys):
    argv = ["--config", str(AASIST_CONFIG), "--test_dir", str(tmp_path), "--parallel_batches", "-1"]
    with pytest.raises(SystemExit) as info:
        inference.main(argv)
    assert info.value.code == 2
    assert "--parallel_batches -1: give 0 (one per thread) or more" in capsys.readouterr().err
