"""Experiment folders: nothing lost by a mistaken rerun, resume checks, extendable runs, one folder per --eval,
failed starts leave nothing behind, and bad data stops a run before training with one line per problem."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from corpus import TINY_AASIST, write_asvspoof_la

import main as main_cli
from antispoof.experiment import eval_folder_name


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    return write_asvspoof_la(tmp_path_factory.mktemp("experiment"), n_per_class=3, seconds=0.5)


def write_config(folder, database, **extra):
    config = {
        "database_path": str(database),
        "batch_size": 2,
        "num_epochs": 1,
        "seed": 5,
        "model_config": TINY_AASIST,
        "optim_config": {"base_lr": 1e-3, "lr_min": 1e-5},
        **extra,
    }
    path = folder / "tiny.conf"
    path.write_text(json.dumps(config))
    return path


def run(config, out, *extra):
    return main_cli.main(["--config", str(config), "--output_dir", str(out), "--device", "cpu", *extra])


def test_a_mistaken_rerun_loses_nothing_and_resume_extends_the_run(database, tmp_path, capsys):
    config = write_config(tmp_path, database)
    out = tmp_path / "exp"
    assert run(config, out) == 0
    exp = out / "LA_tiny_bs2"  # the name holds no epoch count
    state = exp / "weights" / "state_epoch000.pth"
    before = state.read_bytes()
    with pytest.raises(SystemExit) as info:
        run(config, out)
    assert "holds checkpoints of an earlier run: pass --resume" in str(info.value) and "--overwrite" in str(
        info.value
    )
    assert state.read_bytes() == before  # nothing deleted

    capsys.readouterr()
    assert run(config, out, "--resume", "--num_epochs", "2") == 0  # a larger num_epochs continues the run
    assert "continuing at epoch 2" in capsys.readouterr().out
    history = [json.loads(line) for line in (exp / "history.jsonl").open()]
    assert [h["epoch"] for h in history] == [0, 1]
    metrics = json.loads((exp / "metrics.json").read_text())
    assert metrics["dev_eer_threshold"] is not None
    assert metrics["scoring"].startswith("first: the first 8000 samples")  # how the score files were made


def test_resume_refuses_a_changed_recipe_unless_told(database, tmp_path):
    config = write_config(tmp_path, database)
    out = tmp_path / "exp"
    assert run(config, out) == 0
    changed = write_config(tmp_path, database, optim_config={"base_lr": 5e-3, "lr_min": 1e-5}, seed=6)
    with pytest.raises(SystemExit, match=r"trained with different optim_config, seed; restore the config"):
        run(changed, out, "--resume")
    assert run(changed, out, "--resume", "--allow_config_change") == 0  # nothing left to train: evaluates


def test_overwrite_starts_afresh(database, tmp_path):
    config = write_config(tmp_path, database)
    out = tmp_path / "exp"
    assert run(config, out, "--num_epochs", "2") == 0
    assert run(config, out, "--overwrite") == 0
    history = [json.loads(line) for line in (out / "LA_tiny_bs2" / "history.jsonl").open()]
    assert len(history) == 1
    assert not (out / "LA_tiny_bs2" / "weights" / "state_epoch001.pth").exists()


def test_each_eval_goes_to_its_own_folder(database, tmp_path):
    config = write_config(tmp_path, database)
    out = tmp_path / "exp"
    assert run(config, out) == 0
    best = out / "LA_tiny_bs2" / "weights" / "best.pth"
    other = tmp_path / "other.pth"
    other.write_bytes(best.read_bytes())
    assert run(config, out, "--eval", "--eval_model_weights", str(best)) == 0
    assert run(config, out, "--eval", "--eval_model_weights", str(other)) == 0
    assert (out / "LA_tiny_bs2_eval_LA_tiny_bs2-best" / "metrics.json").is_file()
    assert (out / "LA_tiny_bs2_eval_other" / "metrics.json").is_file()
    metrics = json.loads((out / "LA_tiny_bs2_eval_other" / "metrics.json").read_text())
    assert metrics["dev_eer_threshold"] == metrics["dev_scoring"]["eer_threshold"]
    with pytest.raises(SystemExit, match="holds an earlier evaluation of these weights: pass --overwrite"):
        run(config, out, "--eval", "--eval_model_weights", str(other))
    assert eval_folder_name("X", "models/weights/AASIST.pth") == "X_eval_AASIST"


def test_nan_weights_are_one_line_not_a_score_file(database, tmp_path):
    config = write_config(tmp_path, database)
    out = tmp_path / "exp"
    assert run(config, out) == 0
    weights = torch.load(out / "LA_tiny_bs2" / "weights" / "best.pth", weights_only=True)
    broken = tmp_path / "nan.pth"
    torch.save(
        {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in weights.items()},
        broken,
    )
    with pytest.raises(
        SystemExit, match=r"^error: .*\.flac: the model produced NaN/inf for \d+ of \d+ trials .*broken\?$"
    ):
        run(config, out, "--eval", "--eval_model_weights", str(broken))


def test_corrupt_and_missing_audio_stop_the_run_before_training(tmp_path):
    database = write_asvspoof_la(tmp_path, n_per_class=2, seconds=0.5)
    (database / "ASVspoof2019_LA_eval" / "flac" / "LA_E_1000001.flac").write_bytes(b"not audio at all")
    (database / "ASVspoof2019_LA_train" / "flac" / "LA_T_1000002.flac").unlink()
    config = write_config(tmp_path, database)
    with pytest.raises(SystemExit) as info:
        run(config, tmp_path / "exp")
    lines = str(info.value).splitlines()
    assert "LA train" in lines[0] and "1 of 4 audio files are missing or unreadable" in lines[0]
    assert any(line.endswith("LA_T_1000002.flac: missing") for line in lines[1:])
    assert any("LA_E_1000001.flac: cannot read audio" in line for line in lines[1:])
    assert not (tmp_path / "exp").exists() or not any((tmp_path / "exp").iterdir())  # no empty folder left


def test_a_malformed_protocol_line_is_one_line_naming_file_and_line(tmp_path):
    database = write_asvspoof_la(tmp_path, n_per_class=2, seconds=0.5)
    protocol = database / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.dev.trl.txt"
    lines = protocol.read_text().splitlines()
    lines[2] = "LA_0001 LA_D_1000002 - bonafide"  # a field missing
    protocol.write_text("\n".join(lines) + "\n")
    with pytest.raises(SystemExit, match=r"ASVspoof2019\.LA\.cm\.dev\.trl\.txt:3: expected 5 fields"):
        run(write_config(tmp_path, database), tmp_path / "exp")
    assert not (tmp_path / "exp").exists() or not any((tmp_path / "exp").iterdir())
    with pytest.raises(SystemExit, match=r"ASVspoof2019\.LA\.cm\.dev\.trl\.txt:3: expected 5 fields"):
        run(write_config(tmp_path, database, model_path="unused.pth"), tmp_path / "exp", "--eval")


def test_init_weights_starts_training_from_given_weights(database, tmp_path, capsys):
    """Fine-tuning: with a learning rate of zero, one epoch from init_weights keeps them exactly."""
    config = write_config(tmp_path, database)
    assert run(config, tmp_path / "a") == 0
    start = tmp_path / "a" / "LA_tiny_bs2" / "weights" / "best.pth"
    frozen_lr = {"base_lr": 1e-12, "lr_min": 1e-12, "weight_decay": 0.0}
    tuned = write_config(tmp_path, database, init_weights=str(start), optim_config=frozen_lr)
    assert run(tuned, tmp_path / "b") == 0
    assert f"starting from {start}" in capsys.readouterr().out
    before = torch.load(start, weights_only=True)
    after = torch.load(tmp_path / "b" / "LA_tiny_bs2" / "weights" / "best.pth", weights_only=True)
    weights = [k for k in before if "num_batches" not in k and "running" not in k]
    assert all(torch.allclose(before[k].float(), after[k].float(), atol=1e-6) for k in weights)


def test_short_audio_in_training_is_fine_and_empty_audio_is_reported(tmp_path):
    database = write_asvspoof_la(tmp_path, n_per_class=2, seconds=0.5)
    sf.write(database / "ASVspoof2019_LA_dev" / "flac" / "LA_D_1000000.flac", np.zeros(0, np.float32), 16000)
    with pytest.raises(SystemExit, match=r"LA_D_1000000\.flac: (empty audio|cannot read audio)"):
        run(write_config(tmp_path, database), tmp_path / "exp")


def test_seeds_run_one_experiment_each_in_sibling_folders(database, tmp_path):
    config = write_config(tmp_path, database)
    assert run(config, tmp_path / "exp", "--seeds", "1", "2") == 0
    folders = sorted(p.name for p in (tmp_path / "exp").iterdir())
    assert folders == ["LA_tiny_bs2_seed1", "LA_tiny_bs2_seed2"]
    seeds = [json.loads((tmp_path / "exp" / f / "config.conf").read_text())["seed"] for f in folders]
    assert seeds == [1, 2]
    scores = [(tmp_path / "exp" / f / "eval_scores.txt").read_text() for f in folders]
    assert scores[0] != scores[1]  # different seeds, different detectors
