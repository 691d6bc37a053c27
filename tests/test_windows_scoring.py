"""Whole-utterance scoring on files the tests write: ``windows`` (every nb_samp window, mean logit, batched across
files) and ``full`` (the whole file), through the scoring loop, inference.py and main.py --eval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from corpus import voice, write_asvspoof_la

import evaluation
import inference
import main as main_cli
from antispoof.audio import load_audio
from antispoof.config import ConfigValueError, parse_config, read_config
from antispoof.data import ScoringDataset, scoring_rows, window_starts
from antispoof.score_table import read_score_table
from antispoof.scoring import describe_scoring, predict_logits
from models import build_model

NB = 16000  # the tiny model's window: 1 s
# logits (~10) scored in different batches differ by float rounding (the CPU path's chunks follow the batch size)
ATOL = 5e-5
TINY = {
    "architecture": "AASIST",
    "nb_samp": NB,
    "first_conv": 128,
    "filts": [70, [1, 32], [32, 32], [32, 24], [24, 24]],
    "gat_dims": [24, 32],
    "pool_ratios": [0.4, 0.5, 0.7, 0.5],
    "temperatures": [2.0, 2.0, 100.0, 100.0],
}


@pytest.fixture(scope="module")
def model():
    """Random weights; the output layer scaled up, so that different audio gets visibly different logits."""
    torch.manual_seed(0)
    model = build_model(TINY).eval()
    with torch.no_grad():
        model.out_layer.weight.mul_(30)
    return model


def write_audio(path: Path, n_samples: int, seed: int) -> Path:
    x = voice(np.random.default_rng(seed), n_samples / 16000 + 0.01, spoof=bool(seed % 2))[:n_samples]
    sf.write(path, x, 16000)
    return path


def write_three_windows(path: Path) -> Path:
    """Three 1 s windows of different sound: a voiced tone, a noisy one, quiet noise."""
    rng = np.random.default_rng(7)
    quiet_noise = 0.02 * rng.standard_normal(NB).astype(np.float32)
    sf.write(path, np.concatenate([voice(rng, 1.0, False), voice(rng, 1.0, True), quiet_noise]), 16000)
    return path


def one_by_one(model, rows: np.ndarray) -> np.ndarray:
    """Logits of each row scored alone (batch of one)."""
    with torch.inference_mode():
        return np.stack([model(torch.from_numpy(row[None].copy()))[1][0].numpy() for row in rows])


@pytest.mark.parametrize(
    "n_samples, hop, starts",
    [
        (100, 40, [0]),  # shorter than a window: one (tile-padded) window
        (160, 40, [0]),
        (480, 160, [0, 160, 320]),
        (400, 160, [0, 160, 240]),  # the last window is aligned to the end: no sample left out
        (300, 100, [0, 100, 140]),
        (161, 160, [0, 1]),
    ],
)
def test_window_starts_cover_every_sample(n_samples, hop, starts):
    assert window_starts(n_samples, 160, hop) == starts
    covered = np.zeros(n_samples, dtype=bool)
    for start in starts:
        covered[start : start + 160] = True
    assert covered.all()


def test_scoring_rows_per_mode():
    x = np.arange(400, dtype=np.float32)
    np.testing.assert_array_equal(scoring_rows(x, 160), x[None, :160])
    np.testing.assert_array_equal(scoring_rows(x, 160, "full"), x[None])
    windows = scoring_rows(x, 160, "windows")
    np.testing.assert_array_equal(windows, np.stack([x[0:160], x[160:320], x[240:400]]))
    short = np.arange(70, dtype=np.float32)
    for mode in ("first", "windows", "full"):  # a short file is tile-padded alike in every mode
        np.testing.assert_array_equal(scoring_rows(short, 160, mode), np.tile(short, 3)[None, :160])
    with pytest.raises(ValueError, match="scoring must be one of"):
        ScoringDataset([], 160, scoring="middle")
    with pytest.raises(ValueError, match="window hop must be 1 .. nb_samp"):
        ScoringDataset([], 160, scoring="windows", hop=161)


def test_windows_score_of_a_one_window_file_is_the_first_score(model, tmp_path):
    path = write_audio(tmp_path / "one.wav", NB, seed=1)
    first = predict_logits(model, [path], nb_samp=NB, batch_size=1, progress=False)
    windows = predict_logits(model, [path], nb_samp=NB, batch_size=1, scoring="windows", progress=False)
    full = predict_logits(model, [path], nb_samp=NB, batch_size=1, scoring="full", progress=False)
    np.testing.assert_array_equal(windows, first)
    np.testing.assert_array_equal(full, first)


def test_a_three_window_file_scores_the_mean_of_its_windows(model, tmp_path):
    """Batched across files (batch 2 cuts through files), each file's logits are the mean of its windows scored
    one by one; the 2.5-window file's last window is aligned to its end."""
    files = {"one.wav": (NB, 3), "two_and_half.wav": (5 * NB // 2, 4), "short.wav": (NB // 2, 5)}
    paths = [write_three_windows(tmp_path / "three.wav")]
    paths += [write_audio(tmp_path / name, n, seed) for name, (n, seed) in files.items()]
    logits = predict_logits(model, paths, nb_samp=NB, batch_size=2, scoring="windows", progress=False)
    for path, got in zip(paths, logits):
        x = load_audio(path)
        starts = window_starts(len(x), NB, NB)
        rows = np.stack([x[s : s + NB] for s in starts]) if len(x) >= NB else np.tile(x, 2)[None, :NB]
        each = one_by_one(model, rows)
        np.testing.assert_allclose(got, each.mean(axis=0), rtol=0, atol=ATOL, err_msg=path.name)
        if path.name == "three.wav":
            assert starts == [0, NB, 2 * NB]
            assert np.ptp(each[:, 1]) > 0.01  # the windows differ, so the mean is not any one of them
            first = predict_logits(model, [path], nb_samp=NB, batch_size=1, progress=False)[0]
            np.testing.assert_allclose(first, each[0], rtol=0, atol=ATOL)
        if path.name == "two_and_half.wav":
            assert starts == [0, NB, len(x) - NB]


def test_windows_with_overlap_and_an_unreadable_file(model, tmp_path):
    path = write_audio(tmp_path / "a.wav", 2 * NB, seed=6)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    errors: list = []
    logits = predict_logits(
        model,
        [bad, path],
        nb_samp=NB,
        batch_size=3,
        scoring="windows",
        hop=NB // 2,
        skip_unreadable=True,
        errors=errors,
        progress=False,
    )
    assert np.isnan(logits[0]).all() and [i for i, _ in errors] == [0] and "bad.wav" in errors[0][1]
    x = load_audio(path)
    rows = np.stack([x[s : s + NB] for s in (0, NB // 2, NB)])
    np.testing.assert_allclose(logits[1], one_by_one(model, rows).mean(axis=0), rtol=0, atol=ATOL)


def test_full_scores_each_whole_file(model, tmp_path):
    """Equal lengths are batched, other lengths scored apart: each file's logits are the model's on all of it."""
    lengths = [3 * NB, 2 * NB + 123, 3 * NB, NB // 3]
    paths = [write_audio(tmp_path / f"{i}.wav", n, seed=i) for i, n in enumerate(lengths)]
    logits = predict_logits(model, paths, nb_samp=NB, batch_size=4, scoring="full", progress=False)
    for path, got in zip(paths, logits):
        x = load_audio(path)
        whole = x if len(x) >= NB else np.tile(x, 4)[:NB]
        np.testing.assert_allclose(
            got, one_by_one(model, whole[None])[0], rtol=0, atol=ATOL, err_msg=path.name
        )
    windows = predict_logits(model, paths[:1], nb_samp=NB, scoring="windows", progress=False)
    assert not np.allclose(logits[0], windows[0], atol=1e-4)  # full is not the mean of the windows


def test_full_is_refused_for_models_that_take_a_fixed_length(tmp_path):
    amsdf = json.loads((Path(main_cli.__file__).parent / "config" / "AMSDF.conf").read_text())
    with pytest.raises(ConfigValueError) as caught:
        parse_config({**amsdf, "scoring": "full"}, "AMSDF.conf")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("AMSDF.conf: scoring 'full': AMSDF does not read inputs of any length")
    assert "AASIST, AASIST_WAV2VEC" in message and "use scoring 'windows'" in message
    with pytest.raises(ValueError, match="scoring 'full': Linear does not read inputs of any length"):
        predict_logits(torch.nn.Linear(NB, 2), [], nb_samp=NB, scoring="full")


def test_the_config_records_the_hop_and_refuses_one_that_skips_samples():
    config = parse_config({"model_config": TINY, "scoring": "windows"})
    assert config.scoring_hop == NB and config.to_dict()["scoring_hop"] == NB
    assert config.scoring_options == {"nb_samp": NB, "scoring": "windows", "hop": NB}
    assert parse_config({"model_config": TINY}).scoring_options == {
        "nb_samp": NB,
        "scoring": "first",
        "hop": None,
    }
    with pytest.raises(
        ConfigValueError, match=r"scoring_hop must be <= nb_samp \(16000\) so that no sample is"
    ):
        parse_config({"model_config": TINY, "scoring": "windows", "scoring_hop": NB + 1})
    with pytest.raises(ConfigValueError, match="scoring_hop must be > 0, got 0"):
        parse_config({"model_config": TINY, "scoring_hop": 0})
    with pytest.raises(ConfigValueError, match="scoring must be one of 'first', 'windows', 'full'"):
        parse_config({"model_config": TINY, "scoring": "all"})


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, model):
    root = tmp_path_factory.mktemp("windows")
    weights = root / "tiny.pth"
    torch.save(model.state_dict(), weights)
    config = root / "tiny.conf"
    config.write_text(json.dumps({"model_path": str(weights), "batch_size": 4, "model_config": TINY}))
    folder = root / "audio"
    folder.mkdir()
    for i, n in enumerate([3 * NB, NB, 2 * NB + 500]):
        write_audio(folder / f"{i}.wav", n, seed=i)
    return {"root": root, "config": config, "weights": weights, "folder": folder}


@pytest.mark.parametrize("mode", ["first", "windows", "full"])
def test_inference_scores_with_the_chosen_mode_and_says_which(tiny_run, model, mode, tmp_path, capsys):
    out = tmp_path / "scores.tsv"
    extra = [] if mode == "first" else ["--scoring", mode]
    args = ["--config", str(tiny_run["config"]), "--test_dir", str(tiny_run["folder"]), "--device", "cpu"]
    assert inference.main([*args, "--output_file", str(out), "--threshold", "0", *extra]) == 0
    rows = read_score_table(out)
    assert list(rows[0]) == ["path", "score", "decision"]  # the table format does not change
    paths = sorted(tiny_run["folder"].iterdir())
    expected = predict_logits(model, paths, nb_samp=NB, batch_size=4, scoring=mode, progress=False)[:, 1]
    np.testing.assert_allclose([float(row["score"]) for row in rows], expected, rtol=0, atol=ATOL)
    hop = NB if mode == "windows" else None
    assert f"note: scoring: {describe_scoring(mode, NB, hop)}" in capsys.readouterr().err.splitlines()


def test_inference_refuses_full_for_a_fixed_length_model(tmp_path, capsys):
    config = tmp_path / "amsdf.conf"
    amsdf = json.loads((Path(main_cli.__file__).parent / "config" / "AMSDF.conf").read_text())
    config.write_text(json.dumps(amsdf))
    write_audio(tmp_path / "a.wav", NB, seed=0)
    argv = ["--config", str(config), "--test_dir", str(tmp_path / "a.wav"), "--scoring", "full"]
    assert inference.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"error: {config}: scoring 'full': AMSDF does not read inputs of any length (only AASIST, "
        "AASIST_WAV2VEC do): use scoring 'windows'"
    ]


def test_main_eval_scores_windows_and_records_them(tiny_run, model, tmp_path):
    """main.py --eval --scoring windows: the score files hold the windows' mean logits, in the official format,
    and the experiment's config.conf says which scoring and hop were used."""
    database = write_asvspoof_la(tmp_path / "db", n_per_class=2, seconds=2.0)
    config = json.loads(tiny_run["config"].read_text())
    config["database_path"] = str(database)
    config_path = tmp_path / "eval.conf"
    config_path.write_text(json.dumps(config))
    argv = ["--eval", "--config", str(config_path), "--output_dir", str(tmp_path / "out"), "--device", "cpu"]
    assert main_cli.main([*argv, "--scoring", "windows"]) == 0
    (exp,) = (tmp_path / "out").iterdir()
    recorded = json.loads((exp / "config.conf").read_text())
    assert (recorded["scoring"], recorded["scoring_hop"]) == ("windows", NB)
    written = evaluation.read_score_file(exp / "eval_scores.txt")
    flac = database / "ASVspoof2019_LA_eval" / "flac"
    paths = [flac / f"{utt}.flac" for utt in written.utt_ids]
    expected = predict_logits(model, paths, nb_samp=NB, scoring="windows", progress=False)[:, 1]
    np.testing.assert_allclose(written.scores, expected, rtol=0, atol=ATOL)
    first = predict_logits(model, paths, nb_samp=NB, progress=False)[:, 1]
    assert not np.allclose(written.scores, first, atol=1e-4)  # files over 1 s: the later windows count


def test_main_takes_scoring_as_a_config_override(tmp_path):
    config = tmp_path / "c.conf"
    config.write_text(json.dumps({"model_config": TINY}))
    args = main_cli.parse_args(["--config", str(config), "--scoring", "full"])
    assert read_config(config, {k: getattr(args, k) for k in main_cli.OVERRIDES}).scoring == "full"


def test_full_runs_aasist_wav2vec_on_whole_files(tmp_path):
    """The other architecture that takes any length: a tiny XLS-R front-end on files of two lengths."""
    from test_xlsr_models import tiny_config

    torch.manual_seed(0)
    model = build_model(tiny_config("AASIST_WAV2VEC")).eval()
    nb_samp = 64600
    paths = [
        write_audio(tmp_path / f"{i}.wav", n, seed=i) for i, n in enumerate([nb_samp + 20000, 2 * nb_samp])
    ]
    logits = predict_logits(model, paths, nb_samp=nb_samp, batch_size=2, scoring="full", progress=False)
    for path, got in zip(paths, logits):
        np.testing.assert_allclose(got, one_by_one(model, load_audio(path)[None])[0], rtol=0, atol=ATOL)
    assert parse_config({"model_config": tiny_config("AASIST_WAV2VEC"), "scoring": "full"}).scoring == "full"
