"""inference.py on files the tests write: a folder or one file, every audio file scored or listed once with its
reason, a header + tab-separated table safe for any file name, decisions from a threshold, --output_file checked
before scoring, non-finite scores and NaN weights named, the shipped official weights scoring an mp3 offline."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from corpus import AASIST_L_TINY, voice

import inference
from antispoof import audio, runtime
from antispoof.score_table import read_score_table
from models import build_model

REPO = Path(inference.__file__).resolve().parent
MP3_OR_WAV = ".mp3" if audio.mp3_supported() else ".wav"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny AASIST-L with random weights saved as a training run saves them: <exp>/weights/best.pth."""
    root = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    weights = root / "exp" / "weights" / "best.pth"
    weights.parent.mkdir(parents=True)
    torch.save(build_model(AASIST_L_TINY).state_dict(), weights)
    config = root / "tiny.conf"
    config.write_text(
        json.dumps({"model_path": str(weights), "batch_size": 4, "model_config": AASIST_L_TINY})
    )
    return {"config": config, "weights": weights}


def write_voice(path: Path, seed: int = 0, sr: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(os.fsencode(path), voice(np.random.default_rng(seed), 0.6, spoof=bool(seed % 2)), sr)
    return path


def run(config: Path, target: Path, *extra: str) -> int:
    return inference.main(["--config", str(config), "--test_dir", str(target), "--device", "cpu", *extra])


def stderr_lines(capsys) -> tuple[str, list[str]]:
    captured = capsys.readouterr()
    return captured.out, captured.err.splitlines()


def test_every_audio_file_is_scored_or_listed_once(tiny, tmp_path, capsys):
    folder = tmp_path / "in"
    scored = ["a.flac", "sub/b.wav", "c.ogg", "d.aiff", f"e{MP3_OR_WAV}", "two words.wav"]
    for seed, name in enumerate(scored):
        write_voice(folder / name, seed, sr=16000 if name.endswith(".mp3") else 22050)
    (folder / "corrupt.flac").write_bytes(b"\x00garbage" * 100)
    (folder / "song.m4a").write_bytes(b"not decodable here")
    (folder / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    os.mkfifo(folder / "pipe.wav")
    (folder / "notes.txt").write_text("not audio")
    (folder / "folder.wav").mkdir()  # a folder named like audio is walked, not listed
    out = tmp_path / "scores.tsv"
    assert run(tiny["config"], folder, "--output_file", str(out)) == 0
    rows = read_score_table(out)
    assert [row["path"] for row in rows] == sorted(scored)
    assert all(np.isfinite(float(row["score"])) for row in rows)
    stdout, err = stderr_lines(capsys)
    assert "scored 6 of 10 files" in stdout
    skipped = sorted(line for line in err if line.startswith("skipped: "))
    assert skipped == [
        f"skipped: {folder}/corrupt.flac: cannot read audio (Error opening '{folder}/corrupt.flac': "
        "Format not recognised.)",
        f"skipped: {folder}/gone.wav: broken link (points to {tmp_path}/nowhere.wav)",
        f"skipped: {folder}/pipe.wav: not a regular file",
        f"skipped: {folder}/song.m4a: not supported: convert with ffmpeg "
        f"(ffmpeg -i {folder}/song.m4a -ar 16000 {folder}/song.wav)",
    ]


def test_mp3_without_libsndfile_support_says_so(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(audio, "mp3_supported", lambda: False)
    (tmp_path / "x.mp3").write_bytes(b"ID3 whatever")
    assert run(tiny["config"], tmp_path / "x.mp3", "--output_file", str(tmp_path / "o.tsv")) == 1
    stdout, err = stderr_lines(capsys)
    assert err == [
        f"skipped: {tmp_path}/x.mp3: mp3 needs libsndfile >= 1.1 and soundfile >= 0.12 (this is libsndfile "
        f"{sf.__libsndfile_version__}): convert with ffmpeg (ffmpeg -i {tmp_path}/x.mp3 -ar 16000 {tmp_path}/x.wav)"
    ]
    assert stdout.strip() == "scored 0 of 1 files (nothing written); 1 could not be scored (listed on stderr)"
    assert not (tmp_path / "o.tsv").exists()


def test_any_file_name_survives_the_table(tiny, tmp_path):
    folder = tmp_path / "names"
    names = ["tab\there.wav", "new\nline.wav", 'quote"d.wav', "cr\rname.wav", "plain.wav", "é ü.wav"]
    for seed, name in enumerate(names):
        write_voice(folder / name, seed)
    undecodable = os.fsdecode(b"bytes\xff.wav")  # not UTF-8: written back byte for byte
    write_voice(folder / undecodable, 9)
    out = tmp_path / "t.tsv"
    assert run(tiny["config"], folder, "--output_file", str(out)) == 0
    rows = read_score_table(out)
    assert sorted(row["path"] for row in rows) == sorted([*names, undecodable])
    assert out.read_bytes().startswith(b"path\tscore\n")
    assert b"bytes\xff.wav\t" in out.read_bytes()
    plain = next(
        line for line in out.read_text(errors="surrogateescape").splitlines() if line.startswith("plain")
    )
    assert plain.split("\t")[0] == "plain.wav"  # ordinary names are not quoted: cut -f1 works


def test_threshold_gives_a_decision_column(tiny, tmp_path, capsys):
    folder = tmp_path / "in"
    for seed in range(4):
        write_voice(folder / f"{seed}.wav", seed)
    plain = tmp_path / "plain.tsv"
    assert run(tiny["config"], folder, "--output_file", str(plain)) == 0
    scores = {row["path"]: float(row["score"]) for row in read_score_table(plain)}
    assert list(read_score_table(plain)[0]) == ["path", "score"]  # no threshold known: no decision column
    threshold = sorted(scores.values())[1]  # a threshold equal to a score decides bona fide
    decided = tmp_path / "decided.tsv"
    assert run(tiny["config"], folder, "--output_file", str(decided), "--threshold", repr(threshold)) == 0
    rows = read_score_table(decided)
    assert list(rows[0]) == ["path", "score", "decision"]
    assert {row["path"]: row["decision"] for row in rows} == {
        name: "bonafide" if score >= threshold else "spoof" for name, score in scores.items()
    }
    assert sorted(row["decision"] for row in rows) == ["bonafide"] * 3 + ["spoof"]


def test_calibration_adds_the_llr_and_its_bayes_decision(tiny, tmp_path, capsys):
    from antispoof.calibration import Calibration, save_calibration

    folder = tmp_path / "in"
    for seed in range(3):
        write_voice(folder / f"{seed}.wav", seed)
    plain = tmp_path / "plain.tsv"
    assert run(tiny["config"], folder, "--output_file", str(plain)) == 0
    scores = {row["path"]: float(row["score"]) for row in read_score_table(plain)}
    calibration = save_calibration(
        Calibration(slope=2.0, offset=-1.0, prior=0.5), tmp_path / "calibration.json"
    )
    out = tmp_path / "calibrated.tsv"
    capsys.readouterr()
    assert run(tiny["config"], folder, "--output_file", str(out), "--calibration", str(calibration)) == 0
    assert f"note: decisions at the Bayes threshold of {calibration}" in capsys.readouterr().err
    rows = read_score_table(out)
    assert list(rows[0]) == ["path", "score", "llr", "decision"]
    bayes = -np.log(1.9)  # ASVspoof 5 costs: Pspoof 0.05, Cmiss 1, Cfa 10 -> bona fide when LLR >= -log(1.9)
    for row in rows:
        llr = 2.0 * scores[row["path"]] - 1.0
        assert float(row["llr"]) == pytest.approx(llr)
        assert row["decision"] == ("bonafide" if llr >= bayes else "spoof")
    (tmp_path / "bad.json").write_text("[1, 2]")
    assert (
        run(tiny["config"], folder, "--output_file", str(out), "--calibration", str(tmp_path / "bad.json"))
        == 2
    )
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: --calibration ")


def test_the_runs_stored_dev_eer_threshold_is_used_and_said(tiny, tmp_path, capsys):
    folder = tmp_path / "in"
    for seed in range(3):
        write_voice(folder / f"{seed}.wav", seed)
    metrics = tiny["weights"].parent.parent / "metrics.json"
    out = tmp_path / "o.tsv"
    try:
        metrics.write_text(json.dumps({"dev_eer": 3.2, "dev_eer_threshold": -1e9}))
        assert run(tiny["config"], folder, "--output_file", str(out)) == 0
        assert {row["decision"] for row in read_score_table(out)} == {"bonafide"}
        _, err = stderr_lines(capsys)
        assert f"note: decision threshold -1000000000.0: the dev EER threshold stored in {metrics}" in err
        # --threshold wins over the stored one
        assert run(tiny["config"], folder, "--output_file", str(out), "--threshold", "1e9") == 0
        assert {row["decision"] for row in read_score_table(out)} == {"spoof"}
        metrics.write_text(json.dumps({"dev_eer_threshold": "high"}))
        assert run(tiny["config"], folder, "--output_file", str(out)) == 0
        assert list(read_score_table(out)[0]) == ["path", "score"]
        _, err = stderr_lines(capsys)
        assert f"note: {metrics}: no numeric dev_eer_threshold: no decision column; give --threshold T" in err
    finally:
        metrics.unlink()


def output_is_a_folder(tmp: Path) -> tuple[Path, str]:
    (tmp / "out").mkdir()
    return tmp / "out", f"{tmp}/out: is a folder; give a file name"


def output_is_someone_elses_file(tmp: Path) -> tuple[Path, str]:
    (tmp / "results.txt").write_text("my precious results\n")
    return tmp / "results.txt", (
        f"{tmp}/results.txt: exists and is not a score table of inference.py; remove it or choose another name"
    )


def output_is_below_a_file(tmp: Path) -> tuple[Path, str]:
    (tmp / "file").write_text("x")
    return tmp / "file" / "s.tsv", f"{tmp}/file/s.tsv: {tmp}/file is not a folder"


@pytest.mark.parametrize("make", [output_is_a_folder, output_is_someone_elses_file, output_is_below_a_file])
def test_a_bad_output_file_is_refused_before_the_model_loads(tiny, tmp_path, capsys, make):
    write_voice(tmp_path / "in" / "a.wav")
    target, message = make(tmp_path)
    before = target.read_bytes() if target.is_file() else None
    # weights that do not exist: had the model loaded first, the error would name them
    code = run(
        tiny["config"], tmp_path / "in", "--output_file", str(target), "--eval_model_weights", "gone.pth"
    )
    assert code == 2
    assert stderr_lines(capsys) == ("", [f"error: --output_file {message}"])
    if before is not None:
        assert target.read_bytes() == before


def test_weights_that_cannot_load_are_one_line_and_exit_2(tiny, tmp_path, capsys):
    write_voice(tmp_path / "in" / "a.wav")
    code = run(tiny["config"], tmp_path / "in", "--eval_model_weights", str(tmp_path / "gone.pth"))
    assert code == 2
    stdout, err = stderr_lines(capsys)
    assert stdout == "" and len(err) == 1 and err[0].startswith("error: ") and "gone.pth" in err[0]
    assert not (tmp_path / "in_scores.txt").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_output_folder_is_refused(tiny, tmp_path, capsys):
    write_voice(tmp_path / "in" / "a.wav")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert run(tiny["config"], tmp_path / "in", "--output_file", str(locked / "s.tsv")) == 2
    assert stderr_lines(capsys)[1] == [
        f"error: --output_file {locked}/s.tsv: cannot write in {locked} (permission denied)"
    ]


def test_an_unwritable_output_folder_is_refused_whoever_runs_it(tiny, tmp_path, capsys, monkeypatch):
    """The same check as above where the tests run as root (who may write anywhere): access() says no."""
    from antispoof import score_table

    write_voice(tmp_path / "in" / "a.wav")
    monkeypatch.setattr(score_table.os, "access", lambda path, mode: Path(path) != tmp_path)
    assert run(tiny["config"], tmp_path / "in", "--output_file", str(tmp_path / "s.tsv")) == 2
    assert stderr_lines(capsys)[1] == [
        f"error: --output_file {tmp_path}/s.tsv: cannot write in {tmp_path} (permission denied)"
    ]


def test_an_earlier_score_table_is_replaced(tiny, tmp_path):
    write_voice(tmp_path / "in" / "a.wav")
    out = tmp_path / "o.tsv"
    out.write_text("path\tscore\nold.wav\t1.0\n")
    assert run(tiny["config"], tmp_path / "in", "--output_file", str(out)) == 0
    assert [row["path"] for row in read_score_table(out)] == ["a.wav"]


def test_a_non_finite_score_names_the_file(tiny, tmp_path, capsys):
    folder = tmp_path / "in"
    write_voice(folder / "ok.wav")
    huge = np.full(16000, 1e30, dtype=np.float32)
    huge[::2] = -1e30  # finite samples the model cannot digest: its logits overflow to NaN
    sf.write(folder / "huge.wav", huge, 16000, subtype="FLOAT")
    out = tmp_path / "o.tsv"
    assert run(tiny["config"], folder, "--output_file", str(out)) == 0
    assert [row["path"] for row in read_score_table(out)] == ["ok.wav"]
    stdout, err = stderr_lines(capsys)
    assert f"skipped: {folder}/huge.wav: the model's score is not finite (nan)" in err
    assert "scored 1 of 2 files" in stdout


def test_nan_weights_are_one_line_and_exit_2(tiny, tmp_path, capsys):
    folder = tmp_path / "in"
    for seed in range(3):
        write_voice(folder / f"{seed}.wav", seed)
    (folder / "bad.wav").write_bytes(b"nope")
    state = torch.load(tiny["weights"], weights_only=True)
    nan_weights = tmp_path / "nan.pth"
    torch.save(
        {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in state.items()},
        nan_weights,
    )
    out = tmp_path / "o.tsv"
    assert (
        run(tiny["config"], folder, "--output_file", str(out), "--eval_model_weights", str(nan_weights)) == 2
    )
    stdout, err = stderr_lines(capsys)
    assert err[-2:] == [
        f"skipped: {folder}/bad.wav: cannot read audio (Error opening '{folder}/bad.wav': Format not recognised.)",
        f"error: the model produced NaN/inf for every file: are the weights broken? ({nan_weights})",
    ]
    assert "not finite" not in "\n".join(err) and stdout == ""
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--test_dir", "{tmp}/absent"], "error: --test_dir {tmp}/absent: no such file or folder"),
        (
            ["--test_dir", "{tmp}/empty"],
            "error: {tmp}/empty: no audio files found (see --help for the extensions)",
        ),
    ],
)
def test_bad_inputs_are_one_line_and_exit_2(tiny, tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no audio here")
    argv = ["--config", str(tiny["config"]), *(a.format(tmp=tmp_path) for a in args)]
    assert inference.main(argv) == 2
    assert stderr_lines(capsys)[1] == [message.format(tmp=tmp_path)]


def test_a_non_finite_threshold_is_a_usage_error(tiny, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        inference.main(["--config", str(tiny["config"]), "--input", str(tmp_path), "--threshold", "nan"])
    assert exc.value.code == 2
    assert "--threshold nan: give a finite number" in capsys.readouterr().err


def test_the_help_documents_format_and_exit_codes(capsys):
    with pytest.raises(SystemExit):
        inference.main(["--help"])
    text = capsys.readouterr().out
    for needle in (
        "tab-separated",
        "csv.reader",
        "decision",
        "dev_eer_threshold",
        "exit codes",
        "ffmpeg",
        "--input",
    ):
        assert needle in text, needle


def test_cuda_absent_is_one_plain_note(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "_cpu_fallback_noted", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a UserWarning would raise here
        assert runtime.resolve_device() == torch.device("cpu")
        assert runtime.resolve_device() == torch.device("cpu")
    assert capsys.readouterr().err == "note: CUDA is not available: running on the CPU\n"


def test_one_list_of_audio_extensions():
    from DSES import synthesize

    assert synthesize.AUDIO_EXTENSIONS is audio.AUDIO_EXTENSIONS
    assert {".flac", ".wav", ".ogg", ".mp3"} <= set(audio.AUDIO_EXTENSIONS)
    assert not set(audio.AUDIO_EXTENSIONS) & set(audio.CONVERT_WITH_FFMPEG_EXTENSIONS)


def test_shipped_official_weights_are_the_verified_files():
    registry = json.loads((REPO / "models" / "weights_registry.json").read_text())
    for key in ("AASIST", "AASIST-L"):
        path = REPO / "models" / "weights" / f"{key}.pth"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == registry[key]["sha256"], key
        assert (
            json.loads((REPO / "config" / f"{key}.conf").read_text())["model_path"]
            == f"./models/weights/{key}.pth"
        )
    notice = (REPO / "models" / "weights" / "LICENSE-AASIST").read_text()
    assert "Copyright (c) 2021-present NAVER Corp." in notice and "MIT License" in notice


def test_one_mp3_scores_offline_with_the_shipped_weights_as_in_its_folder(tmp_path, capsys):
    """The acceptance command: python inference.py --config config/AASIST.conf --test_dir one_file.mp3."""
    folder = tmp_path / "clips"
    one = write_voice(folder / f"one_file{MP3_OR_WAV}", 1)
    write_voice(folder / "other.wav", 2)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # the CPU-note path, on any machine
    proc = subprocess.run(
        [sys.executable, "inference.py", "--config", "config/AASIST.conf", "--test_dir", str(one)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"scored 1 of 1 files -> {one}_scores.txt"
    assert proc.stderr.count("note: CUDA is not available: running on the CPU") == 1
    assert "Warning" not in proc.stderr and "Traceback" not in proc.stderr
    (single,) = read_score_table(f"{one}_scores.txt")
    assert single["path"] == one.name
    out = tmp_path / "folder.tsv"
    config = str(REPO / "config" / "AASIST.conf")
    weights = str(REPO / "models" / "weights" / "AASIST.pth")
    args = [
        "--config",
        config,
        "--input",
        str(folder),
        "--output_file",
        str(out),
        "--eval_model_weights",
        weights,
    ]
    assert inference.main([*args, "--device", "cpu"]) == 0
    in_folder = {row["path"]: float(row["score"]) for row in read_score_table(out)}
    assert in_folder.keys() == {one.name, "other.wav"}
    assert in_folder[one.name] == pytest.approx(float(single["score"]), abs=1e-5)
