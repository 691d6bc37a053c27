"""evaluation.py --compare (antispoof.compare, antispoof.compare_report): experiment folders -> report + figures."""

import json
import re

import pytest
from emotion_cases import write_experiment

import evaluation as ev
from antispoof.compare import read_experiment
from antispoof.scorefiles import EvaluationInputError, ScoreProtocolMismatch

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """AASIST with two seeds (one ships calibration.json, the other only dev scores) and AASIST_FiLM without dev
    scores, compared with a fallback threshold."""
    root = tmp_path_factory.mktemp("experiments")
    small = dict(n_speakers=10, per_cell=6)
    calibration = {"slope": 1.0, "offset": -0.5, "prior": 0.5}
    folders = [
        write_experiment(root / "LA_AASIST_ep100_seed1", "AASIST", seed=1, calibration=calibration, **small),
        write_experiment(root / "LA_AASIST_ep100_seed2", "AASIST", seed=2, **small),
        write_experiment(
            root / "LA_FiLM_ep50", "AASIST_FiLM", seed=3, with_dev=False, sad_shift=0.0, **small
        ),
    ]
    out = root / "report"
    args = ["--compare", *map(str, folders), "--out", str(out), "--threshold", "0.25", "--n_bootstrap", "300"]
    code = ev.main(args)
    return code, out, folders


def test_compare_writes_report_json_and_figures(compared):
    code, out, _ = compared
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "report.md",
            "compare.json",
            "eer_by_emotion.png",
            "bonafide_rejection_by_emotion.png",
            "score_distributions.png",
            "det_by_emotion.png",
            "eer_emotion_x_system.png",
        ]
    )
    for png in out.glob("*.png"):
        data = png.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 20_000, png.name
    report = (out / "report.md").read_text()
    for png in out.glob("*.png"):
        assert f"]({png.name})" in report  # every figure is shown in the report


def test_compare_groups_seeds_and_says_where_numbers_come_from(compared):
    _, out, folders = compared
    comparison = json.loads((out / "compare.json").read_text())
    detectors = comparison["detectors"]
    assert list(detectors) == ["LA_AASIST_ep100", "LA_FiLM_ep50"]
    aasist, film = detectors["LA_AASIST_ep100"], detectors["LA_FiLM_ep50"]
    assert (
        aasist["n_runs"] == 2 and aasist["architecture"] == "AASIST" and film["architecture"] == "AASIST_FiLM"
    )
    assert aasist["folders"] == [str(folders[0]), str(folders[1])]
    assert aasist["threshold_sources"] == ["EER threshold of dev_scores.txt (LA19 dev)"]
    assert aasist["calibration_sources"] == [
        "calibration.json",
        "fitted here on dev_scores.txt (no calibration.json)",
    ]
    assert film["threshold"] == 0.25 and "--threshold" in film["threshold_source"]
    assert film["calibration_source"].startswith("none") and not film["calibrated"]
    sad = aasist["groups"]["emotion"]["sad"]
    assert "across_runs" in sad and sad["vs_reference"]["significant_bonafide_rejection"]
    assert not film["groups"]["emotion"]["sad"]["vs_reference"]["significant_bonafide_rejection"]
    assert aasist["groups"]["emotion:system"]["angry:Zonos"]["eer_percent"] > 10
    report = (out / "report.md").read_text()
    assert "| LA_AASIST_ep100 | AASIST | 2 (LA_AASIST_ep100_seed1, LA_AASIST_ep100_seed2) |" in report
    assert re.search(r"\*\*LA_AASIST_ep100\*\*, sad: bona fide rejected at the fixed threshold", report)
    assert re.search(r"\*\*LA_AASIST_ep100\*\*, angry: EER", report)
    assert "over 2 runs" in report and "given on the command line (--threshold)" in report


def test_a_broken_folder_is_a_one_line_error(tmp_path, capsys):
    folder = write_experiment(tmp_path / "exp", "AASIST", n_speakers=2, per_cell=2)
    (folder / "config.conf").write_text("{}")
    assert ev.main(["--compare", str(folder), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "config.conf: no model_config.architecture" in err
    with pytest.raises(EvaluationInputError, match="experiment folder not found"):
        read_experiment(tmp_path / "absent")


def test_seeds_must_score_the_same_trials(tmp_path, capsys):
    first = write_experiment(tmp_path / "det_seed1", "AASIST", n_speakers=2, per_cell=2)
    second = write_experiment(tmp_path / "det_seed2", "AASIST", n_speakers=3, per_cell=2)
    assert ev.main(["--compare", str(first), str(second), "--out", str(tmp_path / "out")]) == 2
    assert "det_seed2: its DSES trials differ from those of" in capsys.readouterr().err
    with pytest.raises(ScoreProtocolMismatch):
        from antispoof.compare import group_seeds

        group_seeds([read_experiment(first), read_experiment(second)])
