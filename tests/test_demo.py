"""The embedded demo's corpus builder (demo.py) and its config, on a tiny corpus built for real."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import time
from pathlib import Path

import pytest
import torch

import antispoof.demo as demo
from antispoof.data import EMOTIONS, asvspoof_trials, check_asvspoof_layout, scan_dses
from DSES.la_layout import assign_splits
from models import build_model, load_state_dict, load_weights

REPO = Path(__file__).resolve().parents[1]
# cheap vocoder settings: two distinct spoof systems in a few seconds (the demo's own are slower)
FAST_SPOOFS = [
    {"n_fft": 512, "hop_length": 128, "n_mels": 80, "n_iter": 4},
    {"n_fft": 1024, "hop_length": 256, "n_mels": 40, "n_iter": 2},
]
SPLITS = ("train", "dev", "eval")


def tiny_config(root: Path, **overrides) -> dict:
    section = {
        "root": str(root),
        "speakers": ["1001", "1002", "1003"],  # the fewest that give speaker-disjoint train/dev/eval
        "sentences": 2,
        "split_fractions": [1, 1, 1],  # one speaker each
        "spoof_systems": FAST_SPOOFS,
        **overrides,
    }
    return {"database_path": str(root / "LA"), "emo_dataset": str(root / "DSES"), "demo": section}


def snapshot(root: Path) -> dict[str, int]:
    """Every file under root (hidden ones included) with its modification time in ns."""
    return {
        str(path.relative_to(root)): path.stat().st_mtime_ns for path in root.rglob("*") if path.is_file()
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "demo_data"
    started = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()) as output:
        demo.ensure_demo_corpus(tiny_config(root))
    return root, time.monotonic() - started, output.getvalue()


def test_builds_a_valid_la_layout_with_disjoint_speakers(built):
    root, seconds, log = built
    assert seconds < 30, f"the tiny corpus took {seconds:.0f} s"
    # one eval speaker: the build says that the speaker bootstrap of the DSES tables means little
    assert "note: the eval split has 1 speaker(s), fewer than 5" in log
    summary = check_asvspoof_layout(root / "LA")  # raises if a protocol or a listed flac is missing
    assert summary.count("all audio present") == 3
    speakers = {}
    for split in SPLITS:
        trials = asvspoof_trials(root / "LA", split)
        keys = {t.key for t in trials}
        assert keys == {"bonafide", "spoof"}, f"{split} has {keys}"
        assert {t.system for t in trials if t.key == "spoof"} == {"A01", "A02"}
        assert {t.system for t in trials if t.key == "bonafide"} == {"-"}
        # every bona fide recording comes with its two copies, in the same split
        assert sum(t.key == "spoof" for t in trials) == 2 * sum(t.key == "bonafide" for t in trials)
        speakers[split] = {t.speaker for t in trials}
    assert all(speakers[split] for split in SPLITS)
    assert not (speakers["train"] & speakers["dev"] or speakers["train"] & speakers["eval"])
    assert not speakers["dev"] & speakers["eval"]
    # no invented ASV scores: main.py reports EER only
    assert not (root / "LA" / "ASVspoof2019_LA_asv_scores").exists()


def test_dses_part_holds_the_la_eval_speakers_in_five_emotions_and_two_systems(built):
    root, _, _ = built
    trials, report = scan_dses(root / "DSES")
    assert not report.unexpected
    assert set(report.emotions) == set(EMOTIONS)
    spoof_systems = {t.system for t in trials if t.key == "spoof"}
    assert spoof_systems == {"GL-nfft512-hop128-mels80-it4", "GL-nfft1024-hop256-mels40-it2"}
    eval_trials = asvspoof_trials(root / "LA", "eval")
    assert {t.speaker for t in trials} == {t.speaker for t in eval_trials}
    assert len(trials) == len(eval_trials) == 2 * 5 * 3  # 2 sentences x 5 emotions x (bona fide + 2 spoofs)
    # the same recordings, linked or copied, not re-rendered
    la_sizes = sorted(t.path.stat().st_size for t in eval_trials)
    assert sorted(t.path.stat().st_size for t in trials) == la_sizes
    readme = (root / "README.md").read_text()
    assert "eSpeak" in readme and "Griffin-Lim" in readme and "say nothing about real detectors" in readme


def test_second_call_does_nothing(built, capsys):
    root, _, _ = built
    before = snapshot(root)
    started = time.monotonic()
    demo.ensure_demo_corpus(tiny_config(root))
    assert time.monotonic() - started < 1.0
    assert snapshot(root) == before  # no file added, removed or rewritten
    assert "corpus ready" in capsys.readouterr().out


def test_other_settings_on_a_built_corpus_are_refused(built):
    root, _, _ = built
    before = snapshot(root)
    with pytest.raises(SystemExit, match="built with other settings"):
        demo.ensure_demo_corpus(tiny_config(root, sentences=3))
    assert snapshot(root) == before


def test_an_interrupted_build_resumes_and_keeps_finished_files(built, tmp_path):
    source, _, _ = built
    root = tmp_path / "demo_data"
    shutil.copytree(source, root)
    # a build stopped before its end: no marker, one spoof file missing, LA protocols and DSES not written
    (root / demo.MARKER_NAME).unlink()
    lost = next((root / "synthesis" / "GL-nfft1024-hop256-mels40-it2").rglob("*.flac"))
    lost.unlink()
    shutil.rmtree(root / "LA" / "ASVspoof2019_LA_cm_protocols")
    shutil.rmtree(root / "DSES")
    kept = {p: p.stat().st_mtime_ns for p in (root / "synthesis" / "ESD").rglob("*.flac")}
    kept_spoof = {p: p.stat().st_mtime_ns for p in (root / "synthesis" / lost.parts[-4]).rglob("*.flac")}

    demo.ensure_demo_corpus(tiny_config(root))

    assert lost.is_file()
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    assert {p: p.stat().st_mtime_ns for p in kept_spoof} == kept_spoof
    check_asvspoof_layout(root / "LA")
    assert len(scan_dses(root / "DSES")[0]) == 30
    marker = json.loads((root / demo.MARKER_NAME).read_text())
    assert marker["speakers"] == ["1001", "1002", "1003"] and marker["spoof_systems"] == FAST_SPOOFS


def test_an_unfinished_build_with_other_settings_is_refused(built, tmp_path):
    root = tmp_path / "demo_data"
    shutil.copytree(built[0], root)
    (root / demo.MARKER_NAME).unlink()  # stopped during the build...
    before = snapshot(root)
    with pytest.raises(SystemExit, match="unfinished demo corpus begun with other settings"):
        demo.ensure_demo_corpus(
            tiny_config(root, speakers=["1001", "1002", "1004"])
        )  # ...resumed with others
    assert snapshot(root) == before


def test_a_split_without_both_classes_is_an_error(tmp_path):
    protocols = {}
    for split, lines in (
        ("train", ["1001 LA_T_0000001 - - bonafide", "1001 LA_T_0000002 - A01 spoof"]),
        ("dev", ["1002 LA_D_0000001 - A01 spoof", "1002 LA_D_0000002 - A02 spoof"]),
        ("eval", ["1003 LA_E_0000001 - - bonafide", "1003 LA_E_0000002 - A02 spoof"]),
    ):
        protocols[split] = tmp_path / f"{split}.txt"
        protocols[split].write_text("\n".join(lines) + "\n")
    with pytest.raises(
        SystemExit, match="the dev split has 0 bona fide and 2 spoof trials; give more speakers"
    ):
        demo._check_splits(protocols)
    protocols["dev"].write_text("1002 LA_D_0000001 - - bonafide\n1002 LA_D_0000002 - A01 spoof\n")
    assert demo._check_splits(protocols) == {"train": (1, 1), "dev": (1, 1), "eval": (1, 1)}


def test_bad_demo_sections_are_named(tmp_path):
    with pytest.raises(SystemExit, match="unknown keys.*'speaker'"):
        demo.ensure_demo_corpus({"demo": {"root": str(tmp_path), "speaker": ["a"]}})
    with pytest.raises(SystemExit, match="at least three distinct speakers"):
        demo.ensure_demo_corpus({"demo": {"root": str(tmp_path), "speakers": ["1001", "1002"]}})
    with pytest.raises(SystemExit, match="fewer than demo.sentences"):
        demo.ensure_demo_corpus({"demo": {"root": str(tmp_path / "d"), "sentences": 10_000}})
    assert not os.listdir(tmp_path)  # nothing written before the settings are known to be usable


def test_demo_config_points_main_at_the_demo_corpus():
    config = json.loads((REPO / "config" / "demo.conf").read_text())
    settings = demo.demo_settings(config)
    root = Path(settings["root"])
    assert Path(config["database_path"]) == root / "LA"
    assert Path(config["emo_dataset"]) == root / "DSES"
    assert config["model_config"]["architecture"] == "AASIST"
    assert len(settings["spoof_systems"]) >= 2
    for key in ("batch_size", "num_epochs", "optim_config"):
        assert key in config


def test_demo_script_help_and_notebooks_have_no_placeholders():
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, str(repo / "demo.py"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and "config/demo.conf" in proc.stdout
    for notebook in sorted((repo / "DSES").glob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        source = "".join("".join(cell["source"]) for cell in cells)
        assert "OWNER" not in source and "REPO_URL" not in source, notebook.name
        assert "pip install -q -e" in source, notebook.name  # the framework is installed, not path-patched


def test_demo_config_splits_off_enough_eval_speakers():
    settings = demo.demo_settings(json.loads((REPO / "config" / "demo.conf").read_text()))
    split_of = assign_splits(settings["speakers"], settings["split_fractions"], settings["seed"])
    counts = {split: list(split_of.values()).count(split) for split in SPLITS}
    # the DSES part is the eval speakers: enough of them for a speaker bootstrap that means something
    assert counts["eval"] >= demo.MIN_EVAL_SPEAKERS
    assert counts["train"] >= 1 and counts["dev"] >= 1


def test_demo_model_is_aasist_l_and_starts_from_the_shipped_official_weights():
    config = json.loads((REPO / "config" / "demo.conf").read_text())
    weights = REPO / "models" / "weights" / "AASIST-L.pth"
    assert (REPO / config["init_weights"]).resolve() == weights.resolve()
    official = json.loads((REPO / "config" / "AASIST-L.conf").read_text())["model_config"]
    assert {k: v for k, v in config["model_config"].items() if k != "nb_samp"} == {
        k: v for k, v in official.items() if k != "nb_samp"
    }
    model = load_weights(build_model(config["model_config"]), weights)  # strict: a mismatch raises
    state = load_state_dict(weights)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in state.items())
    # the official weights run on the demo's shorter crops
    model.eval()
    with torch.no_grad():
        _, logits = model(torch.randn(2, config["model_config"]["nb_samp"]) * 0.1)
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()


def test_too_few_eval_speakers_are_noted(tmp_path):
    protocol = tmp_path / "eval.txt"
    lines = [f"{1000 + n % 2} LA_E_{n:07d} - - bonafide" for n in range(6)]  # 2 speakers
    protocol.write_text("\n".join(lines) + "\n")
    note = demo._eval_speaker_note(protocol)
    assert note is not None and "2 speaker(s), fewer than 5" in note
    protocol.write_text("".join(f"{1000 + n} LA_E_{n:07d} - - bonafide\n" for n in range(5)))
    assert demo._eval_speaker_note(protocol) is None
