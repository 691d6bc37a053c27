"""Training at scale on the CPU: torchrun DDP (gloo), kill -9 and --resume, truncated checkpoints, averaging."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from corpus import TINY_AASIST, write_asvspoof_la

import evaluation
import main as main_cli

REPO = Path(__file__).resolve().parents[1]
# one thread per process: the runs compared below must do the same arithmetic, and two ranks share 2 cores
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    return write_asvspoof_la(tmp_path_factory.mktemp("scaling"), n_per_class=4, seconds=0.5)


def write_config(folder: Path, database: Path, **extra) -> Path:
    config = {
        "database_path": str(database),
        "batch_size": 2,
        "num_epochs": 1,
        "seed": 11,
        "freq_aug": True,
        "model_config": TINY_AASIST,
        "optim_config": {"optimizer": "adam", "base_lr": 1e-3, "lr_min": 1e-5},
        **extra,
    }
    path = folder / "tiny.conf"
    path.write_text(json.dumps(config))
    return path


def run_main(*args: str, cwd: Path, torchrun: int = 0) -> subprocess.Popen:
    launcher = [sys.executable]
    if torchrun:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={torchrun}"]
    return subprocess.Popen(
        [*launcher, str(REPO / "main.py"), *args, "--device", "cpu"],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen, timeout: int = 600) -> str:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, out[-3000:]
    return out


def test_torchrun_two_processes_write_one_complete_ordered_score_file(database, tmp_path):
    config = write_config(tmp_path, database)
    outputs = []
    for attempt in ("a", "b"):
        out = finish(run_main("--config", str(config), "--output_dir", attempt, cwd=tmp_path, torchrun=2))
        assert "(2 processes)" in out
        (exp,) = (tmp_path / attempt).iterdir()
        outputs.append(exp)
    first, second = ((exp / "eval_scores.txt").read_text() for exp in outputs)
    protocol = evaluation.read_asvspoof_protocol(
        database / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.eval.trl.txt"
    )
    scores = evaluation.read_score_file(outputs[0] / "eval_scores.txt")
    evaluation.check_scores_against_protocol(scores, protocol, "eval_scores.txt")
    assert list(scores.utt_ids) == [row[1] for row in protocol]  # complete and in protocol order
    assert first == second  # same seed, same world size: the same result
    weights = [torch.load(exp / "weights" / "best.pth", weights_only=True) for exp in outputs]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_kill_during_epoch_two_then_resume_gives_the_uninterrupted_weights(database, tmp_path):
    config = write_config(tmp_path, database, num_epochs=3)
    finish(run_main("--config", str(config), "--output_dir", "full", cwd=tmp_path))

    process = run_main("--config", str(config), "--output_dir", "killed", cwd=tmp_path)
    first_epoch = tmp_path / "killed" / "LA_tiny_bs2" / "weights" / "state_epoch000.pth"
    deadline = time.time() + 300
    while not first_epoch.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert first_epoch.exists(), "the first epoch never finished"
    # no pause: on a quiet machine a tiny epoch takes well under a second, and the kill must land in epoch 2
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "killed" / "LA_tiny_bs2" / "weights" / "state_epoch002.pth").exists()

    out = finish(run_main("--config", str(config), "--output_dir", "killed", "--resume", cwd=tmp_path))
    assert "resumed from" in out
    final = [
        torch.load(tmp_path / d / "LA_tiny_bs2" / "weights" / "weights_epoch002.pth", weights_only=True)
        for d in ("full", "killed")
    ]
    assert final[0].keys() == final[1].keys()
    for key in final[0]:
        assert torch.equal(final[0][key], final[1][key]), key
    history = [json.loads(line) for line in (tmp_path / "killed" / "LA_tiny_bs2" / "history.jsonl").open()]
    assert [h["epoch"] for h in history] == [0, 1, 2]


def test_a_truncated_checkpoint_falls_back_to_the_previous_one(database, tmp_path, capsys):
    config = write_config(tmp_path, database, num_epochs=2)
    args = ["--config", str(config), "--output_dir", str(tmp_path / "exp"), "--device", "cpu"]
    assert main_cli.main(args) == 0
    weights = tmp_path / "exp" / "LA_tiny_bs2" / "weights"
    newest = weights / "state_epoch001.pth"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    capsys.readouterr()
    with pytest.warns(UserWarning, match="state_epoch001.pth: unreadable checkpoint"):
        assert main_cli.main([*args, "--resume"]) == 0
    # epochs are counted from 1 on screen: state_epoch000 holds epoch 1, so the run continues at epoch 2
    assert f"resumed from {weights / 'state_epoch000.pth'}: continuing at epoch 2" in capsys.readouterr().out


@pytest.mark.parametrize("averaging", [{"method": "swa", "swa_epochs": 2}, {"method": "top_k", "top_k": 2}])
def test_checkpoint_averaging_is_reported_on_dev_and_scores(database, tmp_path, averaging):
    config = write_config(tmp_path, database, num_epochs=3, averaging=averaging)
    assert (
        main_cli.main(["--config", str(config), "--output_dir", str(tmp_path / "exp"), "--device", "cpu"])
        == 0
    )
    (exp,) = (tmp_path / "exp").iterdir()
    record = json.loads((exp / "metrics.json").read_text())["dev"]["averaging"]
    assert record["method"] == averaging["method"]
    assert 0 <= record["validation"]["dev_eer"] <= 100  # the averaged model loaded strictly and scored dev
    assert (exp / "dev_scores_averaged.txt").is_file()
    assert (exp / "weights" / "averaged.pth").is_file() == record["used"]
    if averaging["method"] == "top_k":
        assert len(list((exp / "weights").glob("weights_epoch*.pth"))) == 2  # the top-2 candidates were kept
