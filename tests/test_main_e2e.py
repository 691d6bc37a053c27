"""End to end on audio the test writes: main.py trains and evaluates, inference.py scores folders."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from corpus import AASIST_L_TINY, voice, write_asvspoof_la, write_dses

import evaluation
import inference
import main as main_cli
import models
from antispoof.score_table import read_score_table


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny epoch of AASIST-L on a generated ASVspoof 2019 LA tree, with a DSES tree for the breakdown."""
    root = tmp_path_factory.mktemp("e2e")
    database = write_asvspoof_la(root, n_per_class=4)
    dses = write_dses(root / "DSES", speakers=("0011", "0012"), per_folder=1)
    config = {
        "database_path": str(database),
        "asv_score_path": "ASVspoof2019_LA_asv_scores/ASVspoof2019.LA.asv.eval.gi.trl.scores.txt",
        "model_path": "unused.pth",
        "emo_dataset": str(dses),
        "dses_bootstrap": 50,
        "batch_size": 4,
        "eval_batch_size": 16,
        "num_epochs": 1,
        "seed": 3,
        "freq_aug": True,
        "model_config": AASIST_L_TINY,
        "optim_config": {"optimizer": "adam", "base_lr": 1e-4, "lr_min": 5e-6, "weight_decay": 1e-4},
    }
    config_path = root / "tiny.conf"
    config_path.write_text(json.dumps(config))
    out = root / "exp"
    code = main_cli.main(["--config", str(config_path), "--output_dir", str(out), "--device", "cpu"])
    assert code == 0
    (exp,) = out.iterdir()
    return {"root": root, "config": config_path, "exp": exp, "database": database, "dses": dses}


def test_train_writes_the_experiment_folder(trained):
    exp = trained["exp"]
    for name in (
        "config.conf",
        "weights/best.pth",
        "weights/state_epoch000.pth",
        "weights/weights_epoch000.pth",
        "eval_scores.txt",
        "t-DCF_EER.txt",
        "metrics.json",
        "dev_scores_epoch000.txt",
        "dev_scores.txt",
        "dses/dses_scores_epoch000.txt",  # dses_every_epochs 1 (the default): DSES after every epoch
        "dses/dses_protocol.tsv",
        "dses/dses_scores.txt",
        "dses/dses_report.md",
        "dses/dses_metrics.json",
    ):
        assert (exp / name).is_file(), name
    assert any((exp / "tensorboard").iterdir())
    metrics = json.loads((exp / "metrics.json").read_text())
    assert metrics["dev"]["best_epoch"] == 0
    assert 0 <= metrics["eval"]["eer_percent"] <= 100
    assert metrics["eval"]["min_tdcf"] is not None
    # the DSES breakdown is the generic one (evaluation.py --metadata ... --group_by emotion,system)
    assert set(metrics["dses"]["groups"]["emotion"]) == {"neutral", "happy", "angry", "sad", "surprise"}
    assert set(metrics["dses"]["groups"]["system"]) == {"Zonos", "CosyVoice"}
    # judged at LA dev's EER threshold, the fixed operating point saved with the run
    assert (
        metrics["dses"]["threshold"]
        == metrics["dev_eer_threshold"]
        == metrics["dev_scoring"]["eer_threshold"]
    )
    assert "vs_reference" in metrics["dses"]["groups"]["emotion"]["sad"]
    # the eval score file is complete, in protocol order, and matches its protocol
    protocol = evaluation.read_asvspoof_protocol(
        trained["database"] / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.eval.trl.txt"
    )
    scores = evaluation.read_score_file(exp / "eval_scores.txt")
    evaluation.check_scores_against_protocol(scores, protocol, exp / "eval_scores.txt")
    assert list(scores.utt_ids) == [row[1] for row in protocol]
    assert list((exp / "dses" / "det").glob("*.png"))
    assert (exp / "dses" / "emotion_rejection.png").stat().st_size > 10_000  # the one-glance summary chart


def test_dses_every_epochs_scores_dses_only_after_every_nth_epoch(trained, tmp_path, capsys):
    config = json.loads(trained["config"].read_text())
    config.update(num_epochs=3, dses_every_epochs=2)
    (tmp_path / "every2.conf").write_text(json.dumps(config))
    args = [
        "--config",
        str(tmp_path / "every2.conf"),
        "--output_dir",
        str(tmp_path / "exp"),
        "--device",
        "cpu",
    ]
    assert main_cli.main(args) == 0
    (exp,) = (tmp_path / "exp").iterdir()
    per_epoch = sorted(p.name for p in (exp / "dses").glob("dses_scores_epoch*.txt"))
    assert per_epoch == ["dses_scores_epoch001.txt"]  # epochs 0, 1, 2: after the 2nd only
    epoch_lines = [line for line in capsys.readouterr().out.splitlines() if "dev EER" in line]
    assert sum("DSES EER" in line for line in epoch_lines) == 1
    assert (exp / "dses" / "dses_scores.txt").is_file()  # the selected model is still scored on DSES


def test_eval_and_inference_give_the_same_scores(trained, tmp_path, capsys):
    weights = trained["exp"] / "weights" / "best.pth"
    code = main_cli.main(
        [
            "--eval",
            "--config",
            str(trained["config"]),
            "--output_dir",
            str(tmp_path),
            "--device",
            "cpu",
            "--eval_model_weights",
            str(weights),
        ]
    )
    assert code == 0
    assert "EER" in capsys.readouterr().out
    (exp,) = tmp_path.iterdir()
    written = evaluation.read_score_file(exp / "eval_scores.txt")
    eval_scores = dict(zip(written.utt_ids, written.scores))

    flac_dir = trained["database"] / "ASVspoof2019_LA_eval" / "flac"
    out_file = tmp_path / "folder_scores.txt"
    code = inference.main(
        [
            "--config",
            str(trained["config"]),
            "--test_dir",
            str(flac_dir),
            "--output_file",
            str(out_file),
            "--eval_model_weights",
            str(weights),
            "--device",
            "cpu",
            "--batch_size",
            "3",
        ]
    )
    assert code == 0
    folder_scores = {Path(row["path"]).stem: float(row["score"]) for row in read_score_table(out_file)}
    assert folder_scores.keys() == eval_scores.keys()
    for utt, score in eval_scores.items():
        assert folder_scores[utt] == pytest.approx(score, abs=1e-5), utt
    # and the scores mean something after one epoch: not all equal
    assert np.std(list(eval_scores.values())) > 0


def test_inference_on_a_mixed_folder(trained, tmp_path, capsys):
    rng = np.random.default_rng(5)
    folder = tmp_path / "mixed"
    (folder / "sub").mkdir(parents=True)
    written = []
    for name, fmt, sr, channels in [
        ("a.flac", "FLAC", 16000, 1),
        ("b.wav", "WAV", 8000, 2),
        ("sub/c.ogg", "OGG", 44100, 1),
        ("sub/d.wav", "WAV", 44100, 2),
    ]:
        x = voice(rng, 0.8, spoof=False)
        sf.write(folder / name, np.stack([x] * channels, 1) if channels > 1 else x, sr, format=fmt)
        written.append(name)
    (folder / "corrupt.flac").write_bytes(b"\x00garbage" * 100)
    sf.write(folder / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    (folder / "notes.txt").write_text("not audio")
    out_file = tmp_path / "scores.txt"
    code = inference.main(
        [
            "--config",
            str(trained["config"]),
            "--test_dir",
            str(folder),
            "--output_file",
            str(out_file),
            "--eval_model_weights",
            str(trained["exp"] / "weights" / "best.pth"),
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    rows = read_score_table(out_file)
    assert [row["path"] for row in rows] == sorted(written)
    assert all(np.isfinite(float(row["score"])) for row in rows)
    captured = capsys.readouterr()
    assert "corrupt.flac" in captured.err and "empty.wav" in captured.err
    assert "scored 4 of 6 files" in captured.out

    # nothing readable: non-zero exit
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.wav").write_bytes(b"nope")
    code = inference.main(
        [
            "--config",
            str(trained["config"]),
            "--test_dir",
            str(bad),
            "--output_file",
            str(tmp_path / "none.txt"),
            "--eval_model_weights",
            str(trained["exp"] / "weights" / "best.pth"),
            "--device",
            "cpu",
        ]
    )
    assert code == 1


def test_missing_audio_is_reported_before_training(tmp_path, capsys):
    database = write_asvspoof_la(tmp_path, n_per_class=2)
    for path in list((database / "ASVspoof2019_LA_dev" / "flac").glob("*.flac"))[:3]:
        path.unlink()
    config = {
        "database_path": str(database),
        "batch_size": 2,
        "num_epochs": 1,
        "model_config": AASIST_L_TINY,
        "optim_config": {"base_lr": 1e-4},
    }
    (tmp_path / "c.conf").write_text(json.dumps(config))
    with pytest.raises(SystemExit, match=r"dev .*: 3 of 4 audio files are missing"):
        main_cli.main(
            ["--config", str(tmp_path / "c.conf"), "--output_dir", str(tmp_path / "o"), "--device", "cpu"]
        )


@pytest.mark.parametrize("name", ["AASIST_WAV2VEC", "AMSDF"])
def test_xlsr_configs_train_one_tiny_epoch(name, tmp_path):
    """config/AASIST_WAV2VEC.conf and config/AMSDF.conf through main.py, with a tiny random XLS-R."""
    config = json.loads((Path(main_cli.__file__).parent / "config" / f"{name}.conf").read_text())
    config.update(
        database_path=str(write_asvspoof_la(tmp_path, n_per_class=2, seconds=0.5)),
        emo_dataset=None,
        batch_size=2,
        num_epochs=1,
        num_workers=0,
    )
    config["model_config"].update(ssl_path=None, ssl_size="tiny")
    if name == "AMSDF":
        config["model_config"]["emotion_path"] = None
    (tmp_path / "c.conf").write_text(json.dumps(config))
    code = main_cli.main(
        ["--config", str(tmp_path / "c.conf"), "--output_dir", str(tmp_path / "exp"), "--device", "cpu"]
    )
    assert code == 0
    (exp,) = (tmp_path / "exp").iterdir()
    metrics = json.loads((exp / "metrics.json").read_text())
    assert 0 <= metrics["eval"]["eer_percent"] <= 100
    assert (exp / "weights" / "best.pth").is_file()


def test_ser_config_trains_the_emotion_encoder(trained, tmp_path, capsys):
    """config/SER.conf through main.py: ACRNN on the bona fide ESD part, speaker-disjoint, WA and UA reported."""
    config = json.loads((Path(main_cli.__file__).parent / "config" / "SER.conf").read_text())
    config.update(emo_dataset=str(trained["dses"]), batch_size=4, num_epochs=1, num_workers=0)
    (tmp_path / "ser.conf").write_text(json.dumps(config))
    code = main_cli.main(
        ["--config", str(tmp_path / "ser.conf"), "--output_dir", str(tmp_path), "--device", "cpu"]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "held-out speakers ['0012']" in out
    assert "val WA" in out and "UA" in out
    (exp,) = (p for p in tmp_path.iterdir() if p.is_dir())
    record = json.loads((exp / "metrics.json").read_text())["ser"]
    assert 0 <= record["history"][0]["val_ua"] <= 100
    # the trained encoder is a ser_path: it loads strictly into a fresh 5-class ACRNN
    models.load_weights(models.build_model(config["model_config"]), exp / "weights" / "best.pth")
    assert exp.name.startswith("SER_")  # the SER recipe's folder says SER

    # --eval on an emotion-recognition config reports WA, UA and a confusion matrix, never spoofing metrics
    capsys.readouterr()
    args = [
        "--config",
        str(tmp_path / "ser.conf"),
        "--output_dir",
        str(tmp_path),
        "--device",
        "cpu",
        "--eval",
    ]
    assert main_cli.main([*args, "--eval_model_weights", str(exp / "weights" / "best.pth")]) == 0
    out = capsys.readouterr().out
    assert "SER on held-out speakers: WA" in out and "| true \\ predicted | neutral |" in out
    assert "EER" not in out and "t-DCF" not in out
    (evaluated,) = (p for p in tmp_path.iterdir() if p.is_dir() and "_eval_" in p.name)
    result = json.loads((evaluated / "metrics.json").read_text())["ser"]
    assert sum(map(sum, result["confusion"])) == 5  # the held-out speaker's ESD files: one per emotion
    assert 0 <= result["ua_percent"] <= 100 and set(result) >= {"wa_percent", "confusion", "labels"}
