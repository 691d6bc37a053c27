"""``main.py --eval --eval_set``: two sets in one run (scores, metrics.json, summary.md), a broken set reported in
one line while the others run, and a scoring killed with kill -9 resuming without rescoring finished shards."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from corpus import TINY_AASIST
from evalset_cases import write_in_the_wild, write_la2021

import main as main_cli
from models import build_model

REPO = Path(__file__).resolve().parents[1]


def write_config(folder: Path, **extra) -> Path:
    torch.manual_seed(0)
    weights = folder / "tiny.pth"
    torch.save(build_model(dict(TINY_AASIST)).state_dict(), weights)
    config = {
        "model_config": TINY_AASIST,
        "model_path": str(weights),
        "batch_size": 2,
        "dses_bootstrap": 50,
        **extra,
    }
    path = folder / "tiny.conf"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalsets")
    return {"LA21": write_la2021(root / "la21"), "ITW": write_in_the_wild(root / "itw")}


def test_two_sets_in_one_run_write_scores_metrics_and_one_summary(sets, tmp_path, capsys):
    config = write_config(tmp_path)
    argv = ["--config", str(config), "--output_dir", str(tmp_path / "exp"), "--device", "cpu", "--eval"]
    argv += ["--eval_set", f"LA21={sets['LA21']}", "--eval_set", f"ITW={sets['ITW']}"]
    argv += ["--eval_set", f"DF21={tmp_path / 'missing'}"]
    assert main_cli.main(argv) == 0
    (exp,) = (tmp_path / "exp").iterdir()
    la = json.loads((exp / "LA21" / "metrics.json").read_text())
    itw = json.loads((exp / "ITW" / "metrics.json").read_text())
    assert la["n_trials"] == 24 and itw["n_trials"] == 12
    assert 0 <= la["eer_percent"] <= 100 and la["min_tdcf"] is not None
    assert la["official"]["eer_percent"]["Pooled"]["Pooled"] == pytest.approx(la["eer_percent"])
    assert set(la["breakdown"]["groups"]) == {"system", "codec", "transmission"}
    assert set(la["breakdown"]["groups"]["system"]) == {"A07", "A08", "A09"}  # each with all bona fide
    assert la["eer_ci"] is not None and len(la["eer_ci"]) == 2
    lines = (exp / "LA21" / "scores.txt").read_text().splitlines()
    assert len(lines) == 24 and lines[0].split()[0] == "LA_E_1000000"
    assert len((exp / "ITW" / "scores.txt").read_text().splitlines()) == 12
    summary = (exp / "summary.md").read_text()
    rows = [line for line in summary.splitlines() if line.startswith("| ") and not line.startswith("| set")]
    assert [row.split("|")[1].strip() for row in rows] == ["LA21", "ITW", "DF21"]  # in the order given
    assert "skipped:" in rows[2] and "missing" in rows[2]
    top = json.loads((exp / "metrics.json").read_text())
    assert list(top["eval_sets"]) == ["LA21", "ITW", "DF21"] and "error" in top["eval_sets"]["DF21"]


def test_eval_set_flag_errors_are_one_line(tmp_path):
    config = write_config(tmp_path)
    base = ["--config", str(config), "--output_dir", str(tmp_path / "exp"), "--device", "cpu"]
    with pytest.raises(SystemExit, match="^error: unknown eval set 'Nope'"):
        main_cli.main([*base, "--eval", "--eval_set", "Nope=/x"])
    with pytest.raises(SystemExit, match="add --eval"):
        main_cli.main([*base, "--eval_set", "ITW=/x"])
    with pytest.raises(SystemExit, match="^error: no eval set could be read: ITW: .*meta.csv"):
        main_cli.main([*base, "--eval", "--eval_set", f"ITW={tmp_path}"])


def run_main(config: Path, out: str, itw: Path, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [
            sys.executable,
            str(REPO / "main.py"),
            "--config",
            str(config),
            "--output_dir",
            out,
            "--device",
            "cpu",
        ]
        + ["--eval", "--eval_set", f"ITW={itw}"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_killed_scoring_resumes_without_rescoring_finished_shards(tmp_path):
    itw = write_in_the_wild(tmp_path / "itw", n=24)
    config = write_config(tmp_path, eval_shard_size=4)
    full = run_main(config, "full", itw, tmp_path)
    out, _ = full.communicate(timeout=600)
    assert full.returncode == 0, out[-3000:]

    process = run_main(config, "killed", itw, tmp_path)
    shards = tmp_path / "killed" / "LA_tiny_bs2_eval_tiny" / "ITW" / "shards"
    deadline = time.time() + 300
    while not list(shards.glob("shard_*.npy")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = {p: p.stat().st_mtime_ns for p in shards.glob("shard_*.npy")}
    assert 1 <= len(done) < 6, "the kill must land between the first and the last shard"
    assert not (shards.parent / "scores.txt").exists()

    resumed = run_main(config, "killed", itw, tmp_path)
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out[-3000:]
    assert f"{len(done)} of 6 shards already scored: resuming" in out
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in done.items())  # not scored again
    assert len(list(shards.glob("shard_*.npy"))) == 6
    expected = (tmp_path / "full" / "LA_tiny_bs2_eval_tiny" / "ITW" / "scores.txt").read_text()
    assert (shards.parent / "scores.txt").read_text() == expected


def test_torchrun_two_processes_deal_the_shards_and_give_the_single_process_scores(tmp_path):
    itw = write_in_the_wild(tmp_path / "itw", n=20)
    config = write_config(tmp_path, eval_shard_size=3)
    single = run_main(config, "single", itw, tmp_path)
    out, _ = single.communicate(timeout=600)
    assert single.returncode == 0, out[-3000:]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    args = [
        "--config",
        str(config),
        "--output_dir",
        "two",
        "--device",
        "cpu",
        "--eval",
        "--eval_set",
        f"ITW={itw}",
    ]
    two = subprocess.run(
        [*launcher, str(REPO / "main.py"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert two.returncode == 0, (two.stdout + two.stderr)[-3000:]
    assert "(2 processes)" in two.stdout
    scores = [
        (tmp_path / d / "LA_tiny_bs2_eval_tiny" / "ITW" / "scores.txt").read_text() for d in ("single", "two")
    ]
    assert scores[0] == scores[1] and len(scores[0].splitlines()) == 20
