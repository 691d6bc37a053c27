"""evaluation.py: ASVspoof 2019 metrics, score/protocol I/O, CM-only metrics, bootstrap, DSES breakdown."""

import json
import math
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT, shared_path

import evaluation as ev

CLI = [sys.executable, str(REPO_ROOT / "evaluation.py")]
FIXTURE_SCORES = ("fixtures", "cm_scores_public_seed7.txt")
FIXTURE_REFERENCE = ("fixtures", "tdcf_reference_public.json")
ASV_EVAL = ("asvspoof2019", "ASVspoof2019.LA.asv.eval.gi.trl.scores.txt")
PROTOCOL_EVAL = ("asvspoof2019", "ASVspoof2019.LA.cm.eval.trl.txt")
EVAL_ATTACKS = [f"A{i:02d}" for i in range(7, 20)]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)


def assert_rel(actual: float, expected: float, rel: float = 1e-6) -> None:
    assert abs(actual - expected) <= rel * abs(expected), f"{actual} != {expected} (rel {rel})"


# ----------------------------------------------------------------------------------------------------------
# parity with the official ASVspoof 2019 evaluation code
# ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reference():
    with open(shared_path(*FIXTURE_REFERENCE)) as f:
        return json.load(f)["cm_scores_public_seed7.txt"]


def test_fixture_reproduced_to_1e6(reference):
    result = ev.evaluate_asvspoof2019(shared_path(*FIXTURE_SCORES), shared_path(*ASV_EVAL))
    assert (result["n_trials"], result["n_bonafide"], result["n_spoof"]) == (71237, 7355, 63882)
    assert_rel(result["eer_percent"], reference["eer_percent"])
    assert_rel(result["min_tdcf"], reference["min_tdcf"])
    assert list(result["per_attack_eer_percent"]) == EVAL_ATTACKS
    for attack, expected in reference["per_attack_eer_percent"].items():
        assert_rel(result["per_attack_eer_percent"][attack], expected)
        assert result["per_attack_n_spoof"][attack] == 4914
    json.dumps(result)  # main.py saves it


def test_cli_on_fixture_matches_reference_and_is_fast(reference):
    scores, asv, protocol = shared_path(*FIXTURE_SCORES), shared_path(*ASV_EVAL), shared_path(*PROTOCOL_EVAL)
    wall, cpu = [], []
    for _ in range(2):  # best of two
        start, children = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = run_cli("--cm_scores", scores, "--asv_scores", asv, "--protocol", protocol, "--json")
        end = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall.append(time.perf_counter() - start)
        cpu.append(end.ru_utime - children.ru_utime + end.ru_stime - children.ru_stime)
        assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert_rel(result["eer_percent"], reference["eer_percent"])
    assert_rel(result["min_tdcf"], reference["min_tdcf"])
    for attack, expected in reference["per_attack_eer_percent"].items():
        assert_rel(result["per_attack_eer_percent"][attack], expected)
    # whole CLI run: interpreter start, numpy import, 71k CM + 71k protocol + 103k ASV lines, all metrics.
    # CPU time is the bound (wall time on a shared 2-core machine mostly measures the neighbours); wall time
    # only has to stay sane. Unloaded, the run takes about 0.5 s of either.
    assert min(cpu) < 2.0, f"CLI used {min(cpu):.2f} s of CPU (best of {cpu}); wall {wall}"
    assert min(wall) < 6.0, f"CLI took {min(wall):.2f} s wall (best of {wall})"


def test_cli_text_report(reference):
    proc = run_cli("--cm_scores", shared_path(*FIXTURE_SCORES), "--asv_scores", shared_path(*ASV_EVAL))
    assert proc.returncode == 0, proc.stderr
    assert f"EER        = {reference['eer_percent']:.9f} %" in proc.stdout
    assert f"min t-DCF  = {reference['min_tdcf']:.9f}" in proc.stdout
    for attack, expected in reference["per_attack_eer_percent"].items():
        assert f"{attack}         4914   {expected:12.9f}" in proc.stdout


def test_cli_without_asv_scores_reports_eer_only(reference, capsys):
    assert ev.main(["--cm_scores", str(shared_path(*FIXTURE_SCORES)), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["min_tdcf"] is None
    assert_rel(result["eer_percent"], reference["eer_percent"])


# ----------------------------------------------------------------------------------------------------------
# EER, DET, t-DCF on hand-computed cases
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("bonafide", "spoof", "eer", "threshold"),
    [
        ([2, 3], [0, 1], 0.0, 1.0),  # separated: the EER point rejects both spoofs
        ([0, 1], [2, 3], 1.0, 1.0),  # reversed: every decision wrong
        ([1, 3, 5], [0, 2, 4], 1 / 3, 2.0),  # interleaved: Pmiss = Pfa = 1/3 after rejecting 0, 1, 2
        ([0.5, 0.6, 0.9, 1.0], [0.1, 0.7], 0.5, 0.6),  # Pmiss 2/4, Pfa 1/2
        ([1, 1], [1, 1], 1.0, 1.0),  # all tied: the official sort puts bona fide first among equal scores
    ],
)
def test_eer_hand_computed(bonafide, spoof, eer, threshold):
    got_eer, got_threshold = ev.compute_eer(np.array(bonafide, float), np.array(spoof, float))
    assert got_eer == pytest.approx(eer, abs=1e-12)
    assert got_threshold == threshold


def test_det_curve_grid():
    frr, far, thresholds = ev.compute_det_curve([1.0, 3.0, 5.0], [0.0, 2.0, 4.0])
    np.testing.assert_allclose(frr, [0, 0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1])
    np.testing.assert_allclose(far, [1, 2 / 3, 2 / 3, 1 / 3, 1 / 3, 0, 0])
    np.testing.assert_allclose(thresholds, [-0.001, 0, 1, 2, 3, 4, 5])


def test_eer_refuses_empty_or_non_finite():
    with pytest.raises(ValueError, match="at least one"):
        ev.compute_eer([], [1.0])
    with pytest.raises(ValueError, match="NaN or inf"):
        ev.compute_eer([1.0, np.nan], [0.0])


def test_tdcf_curve_hand_computed():
    cost = ev.ASVSPOOF2019_TDCF_COST_MODEL
    pfa, pmiss, pmiss_spoof = 0.02, 0.03, 0.4
    curve, thresholds = ev.compute_tdcf_curve([2.0, 3.0, 4.0], [0.0, 1.0, 1.5], pfa, pmiss, pmiss_spoof)
    c1 = 0.95 * 0.99 * (1 - 1 * pmiss) - 0.95 * 0.01 * 10 * pfa
    c2 = 10 * 0.05 * (1 - pmiss_spoof)
    assert cost["Ptar"] == pytest.approx(0.9405) and cost["Pnon"] == pytest.approx(0.0095)
    assert curve[0] == pytest.approx(c2 / min(c1, c2))  # accept everything: every spoof passes the CM
    assert curve[-1] == pytest.approx(c1 / min(c1, c2))  # reject everything
    assert curve.min() == 0.0 and thresholds[np.argmin(curve)] == 1.5  # a perfect CM costs nothing
    with pytest.raises(ValueError, match="soft CM scores"):
        ev.compute_tdcf_curve([1.0, 1.0], [0.0, 0.0], pfa, pmiss, pmiss_spoof)


def test_asv_operating_point_is_at_asv_eer():
    asv = ev.ASVScores(np.array([1.0, 2.0, 3.0, 4.0]), np.array([-1.0, 0.0, 1.5, 5.0]), np.array([0.5, 3.5]))
    rates = ev.asv_error_rates(asv)
    assert rates["threshold"] == ev.compute_eer(asv.target, asv.nontarget)[1]
    t = rates["threshold"]
    assert rates["pfa"] == np.mean(asv.nontarget >= t) and rates["pmiss"] == np.mean(asv.target < t)
    assert rates["pmiss_spoof"] == np.mean(asv.spoof < t)


# ----------------------------------------------------------------------------------------------------------
# score files and protocols
# ----------------------------------------------------------------------------------------------------------
PROTOCOL_LINES = [
    "LA_0001 LA_E_1 - - bonafide",
    "LA_0001 LA_E_2 - A07 spoof",
    "LA_0002 LA_E_3 - - bonafide",
    "LA_0002 LA_E_4 - A08 spoof",
    "LA_0003 LA_E_5 - A07 spoof",
]
GOOD_SCORES = [
    ("LA_E_1", "-", "bonafide", 2.5),
    ("LA_E_2", "A07", "spoof", -1.0),
    ("LA_E_3", "-", "bonafide", 0.5),
]
GOOD_SCORES += [("LA_E_4", "A08", "spoof", 1.0), ("LA_E_5", "A07", "spoof", -3.0)]


@pytest.fixture
def small_protocol(tmp_path):
    path = tmp_path / "protocol.txt"
    path.write_text("\n".join(PROTOCOL_LINES) + "\n")
    return path


def write_rows(path: Path, rows) -> Path:
    path.write_text("".join(f"{u} {s} {k} {v}\n" for u, s, k, v in rows))
    return path


def test_score_file_round_trip_is_exact_and_atomic(tmp_path):
    scores = np.random.default_rng(0).normal(size=5).astype(np.float32)
    ids = [f"LA_E_{i}" for i in range(5)]
    path = ev.write_score_file(
        tmp_path / "scores.txt",
        ids,
        ["-", "A07", "-", "A08", "A09"],
        ["bonafide", "spoof"] * 2 + ["spoof"],
        scores,
    )
    back = ev.read_score_file(path)
    assert back.utt_ids == tuple(ids) and back.keys[:2] == ("bonafide", "spoof")
    np.testing.assert_array_equal(back.scores, scores.astype(np.float64))
    assert path.read_text().splitlines()[1].startswith("LA_E_1 A07 spoof ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.txt"]  # no temp file left behind


def test_write_score_file_accepts_rows(tmp_path):
    path = ev.write_score_file(tmp_path / "rows.txt", GOOD_SCORES)
    assert path.read_text() == "".join(f"{u} {s} {k} {float(v)!r}\n" for u, s, k, v in GOOD_SCORES)
    with pytest.raises(ev.EvaluationInputError, match="row 2 is not"):
        ev.write_score_file(tmp_path / "bad.txt", [GOOD_SCORES[0], ("LA_E_2", "A07", 1.0)])


def test_write_score_file_refuses_bad_input(tmp_path):
    target = tmp_path / "scores.txt"
    with pytest.raises(ev.EvaluationInputError, match="non-finite"):
        ev.write_score_file(target, ["a", "b"], ["-", "A07"], ["bonafide", "spoof"], [0.0, np.nan])
    with pytest.raises(ev.EvaluationInputError, match="whitespace"):
        ev.write_score_file(target, ["a b", "c"], ["-", "A07"], ["bonafide", "spoof"], [0.0, 1.0])
    with pytest.raises(ev.EvaluationInputError, match="not bonafide"):
        ev.write_score_file(target, ["a", "c"], ["-", "A07"], ["bonafide", "fake"], [0.0, 1.0])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("LA_E_1 - bonafide 1.0\nLA_E_2 A07 spoof\n", r"scores\.txt:2: expected 4 fields"),
        ("LA_E_1 - bonafide 1.0\n\nLA_E_2 A07 spoof nan\n", r"scores\.txt:3: score 'nan' is not finite"),
        ("LA_E_1 - bonafide inf\n", r"scores\.txt:1: score 'inf' is not finite"),
        ("LA_E_1 - bonafide 1.0\nLA_E_2 A07 spoof 1,5\n", r"scores\.txt:2: score '1,5' is not a number"),
        ("LA_E_1 - genuine 1.0\n", r"scores\.txt:1: key 'genuine' is not bonafide\|spoof"),
        ("\n\n", r"scores\.txt: score file has no trials"),
    ],
)
def test_read_score_file_errors_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "scores.txt"
    path.write_text(content)
    with pytest.raises(ev.EvaluationInputError, match=message) as info:
        ev.read_score_file(path)
    assert "\n" not in str(info.value)


def test_read_protocol_errors(tmp_path):
    path = tmp_path / "protocol.txt"
    path.write_text("LA_0001 LA_E_1 - - bonafide\nLA_0001 LA_E_2 - A07\n")
    with pytest.raises(ev.EvaluationInputError, match=r"protocol\.txt:2: expected 5 fields"):
        ev.read_asvspoof_protocol(path)
    path.write_text("LA_0001 LA_E_1 - - bonafide\nLA_0001 LA_E_1 - A07 spoof\n")
    with pytest.raises(ev.EvaluationInputError, match="LA_E_1 appears more than once"):
        ev.read_asvspoof_protocol(path)
    with pytest.raises(ev.EvaluationInputError, match="cannot read protocol"):
        ev.read_asvspoof_protocol(tmp_path / "absent.txt")


@pytest.mark.parametrize(
    ("split", "n_trials", "n_bonafide", "attacks"),
    [
        ("train.trn", 25380, 2580, [f"A{i:02d}" for i in range(1, 7)]),
        ("dev.trl", 24844, 2548, [f"A{i:02d}" for i in range(1, 7)]),
        ("eval.trl", 71237, 7355, EVAL_ATTACKS),
    ],
)
def test_read_asvspoof_protocol_real_counts(split, n_trials, n_bonafide, attacks):
    path = shared_path("asvspoof2019", f"ASVspoof2019.LA.cm.{split}.txt")
    seconds = []  # CPU time, best of two: wall time on a shared machine measures the neighbours
    for _ in range(2):
        start = time.process_time()
        entries = ev.read_asvspoof_protocol(path)
        seconds.append(time.process_time() - start)
    assert len(entries) == n_trials
    assert sum(key == "bonafide" for _, _, _, key in entries) == n_bonafide
    assert sorted({system for _, _, system, key in entries if key == "spoof"}) == attacks
    assert {system for _, _, system, key in entries if key == "bonafide"} == {"-"}
    speaker, utt_id, _, _ = entries[0]
    assert speaker.startswith("LA_") and utt_id.startswith("LA_")
    assert min(seconds) < 0.2, f"parsing {n_trials} lines took {min(seconds):.3f} s"


def test_matching_scores_pass(tmp_path, small_protocol):
    scores = ev.read_score_file(write_rows(tmp_path / "s.txt", GOOD_SCORES))
    ev.check_scores_against_protocol(scores, ev.read_asvspoof_protocol(small_protocol), "s.txt")
    shuffled = ev.read_score_file(write_rows(tmp_path / "r.txt", GOOD_SCORES[::-1]))  # order is free
    ev.check_scores_against_protocol(shuffled, ev.read_asvspoof_protocol(small_protocol), "r.txt")


MISMATCHES = {
    "missing": (GOOD_SCORES[:-1], r"1 trial\(s\) missing from the scores \(first: LA_E_5\)"),
    "extra": (
        GOOD_SCORES + [("LA_E_9", "A07", "spoof", 0.0)],
        r"1 trial\(s\) not in the protocol \(first: LA_E_9\)",
    ),
    "duplicate": (GOOD_SCORES + [GOOD_SCORES[1]], r"1 trial\(s\) duplicated \(first: LA_E_2\)"),
    "key": (
        [GOOD_SCORES[0], ("LA_E_2", "A07", "bonafide", -1.0)] + GOOD_SCORES[2:],
        r"1 trial\(s\) with a different key \(first: LA_E_2 \(bonafide, protocol spoof\)\)",
    ),
    "system": (
        GOOD_SCORES[:3] + [("LA_E_4", "A09", "spoof", 1.0), GOOD_SCORES[4]],
        r"1 trial\(s\) with a different system \(first: LA_E_4 \(A09, protocol A08\)\)",
    ),
}


@pytest.mark.parametrize("case", sorted(MISMATCHES))
def test_mismatch_refused_by_function(tmp_path, small_protocol, case):
    rows, message = MISMATCHES[case]
    path = write_rows(tmp_path / "scores.txt", rows)
    with pytest.raises(ev.ScoreProtocolMismatch, match=message) as info:
        ev.check_scores_against_protocol(
            ev.read_score_file(path), ev.read_asvspoof_protocol(small_protocol), path
        )
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_mismatch_accepts_trial_objects(small_protocol):
    class Trial:  # data_utils' trials carry attributes, not positions
        def __init__(self, utt_id, system, key):
            self.utt_id, self.system, self.key = utt_id, system, key

    trials = [Trial(u, s, k) for _, u, s, k in ev.read_asvspoof_protocol(small_protocol)]
    scores = ev.CMScores.from_columns(*zip(*GOOD_SCORES))
    ev.check_scores_against_protocol(scores, trials)
    with pytest.raises(ev.ScoreProtocolMismatch, match="missing"):
        ev.check_scores_against_protocol(scores, trials + [Trial("LA_E_77", "-", "bonafide")])


def test_cli_refuses_mismatch_with_exit_2(tmp_path, small_protocol):
    rows, message = MISMATCHES["key"]
    scores = write_rows(tmp_path / "scores.txt", rows)
    proc = run_cli("--cm_scores", scores, "--protocol", small_protocol)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("evaluation.py: error: ") and "with a different key" in proc.stderr


@pytest.mark.parametrize("case", sorted(MISMATCHES))
def test_cli_main_returns_2_on_each_mismatch(tmp_path, small_protocol, capsys, case):
    rows, message = MISMATCHES[case]
    scores = write_rows(tmp_path / "scores.txt", rows)
    assert ev.main(["--cm_scores", str(scores), "--protocol", str(small_protocol)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert re.search(message, captured.err)


def test_cli_bad_files_exit_1(tmp_path, small_protocol, capsys):
    good = write_rows(tmp_path / "scores.txt", GOOD_SCORES)
    assert ev.main(["--cm_scores", str(good), "--protocol", str(small_protocol)]) == 0
    assert "A08" in capsys.readouterr().out
    for args, message in (
        (["--cm_scores", tmp_path / "absent.txt"], "absent.txt: cannot read score file"),
        (
            ["--cm_scores", write_rows(tmp_path / "bad.txt", [("LA_E_1", "-", "bonafide", "x")])],
            "bad.txt:1: score",
        ),
        (
            ["--cm_scores", good, "--asv_scores", tmp_path / "no_asv.txt"],
            "no_asv.txt: cannot read ASV score file",
        ),
        (
            ["--cm_scores", good, "--protocol", tmp_path / "no_protocol.txt"],
            "no_protocol.txt: cannot read protocol",
        ),
    ):
        assert ev.main(list(map(str, args))) == 1, args
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in err, err
    proc = run_cli("--cm_scores", tmp_path / "absent.txt")  # the real process: exit status, no traceback
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_module_imports_only_numpy():
    heavy = "('torch', 'matplotlib', 'scipy')"
    code = f"import sys, evaluation; print(sorted(m for m in {heavy} if m in sys.modules))"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# ----------------------------------------------------------------------------------------------------------
# CM-only metrics (ASVspoof 5)
# ----------------------------------------------------------------------------------------------------------
def test_cllr_sanity():
    assert ev.compute_cllr(np.zeros(7), np.zeros(3)) == pytest.approx(1.0, abs=1e-15)
    assert ev.compute_cllr([30.0, 40.0], [-30.0, -50.0]) < 1e-12
    assert math.isfinite(ev.compute_cllr([-1e4], [1e4]))  # no overflow on huge wrong scores
    rng = np.random.default_rng(0)
    # N(+4, 8) vs N(-4, 8): the score itself is the log-likelihood ratio, i.e. perfectly calibrated
    bonafide, spoof = rng.normal(4, math.sqrt(8), 4000), rng.normal(-4, math.sqrt(8), 4000)
    calibrated = ev.compute_cllr(bonafide, spoof)
    for scale in (0.3, 3.0):  # mis-scaled LLRs of the same discrimination cost more
        assert ev.compute_cllr(scale * bonafide, scale * spoof) > calibrated + 0.05
    well_separated = ev.compute_cllr(
        rng.normal(20, math.sqrt(40), 4000), rng.normal(-20, math.sqrt(40), 4000)
    )
    assert well_separated < 0.01


def test_min_and_act_dcf_hand_computed():
    # threshold -log(1.9) = -0.642: bona fide -1 is missed, spoof -0.5 is accepted
    act, threshold = ev.compute_act_dcf([0.0, -1.0], [-2.0, -0.5])
    assert threshold == pytest.approx(-math.log(1.9))
    assert act == pytest.approx((0.95 * 0.5 + 0.5 * 0.5) / 0.5)
    # min DCF: best is rejecting only the lowest spoof (Pmiss 0, Pfa 1/2) -> 0.5 * 0.5 / 0.5
    assert ev.compute_min_dcf([0.0, -1.0], [-2.0, -0.5])[0] == pytest.approx(0.5)
    assert ev.compute_min_dcf([3.0, 4.0], [0.0, 1.0])[0] == 0.0
    assert ev.compute_min_dcf(np.zeros(4), np.zeros(4))[0] == pytest.approx(1.0)  # a useless CM
    # calibration does not change min DCF but does change act DCF
    rng = np.random.default_rng(1)
    bonafide, spoof = rng.normal(2, 1, 500), rng.normal(-2, 1, 500)
    assert ev.compute_min_dcf(bonafide + 5, spoof + 5)[0] == pytest.approx(
        ev.compute_min_dcf(bonafide, spoof)[0]
    )
    assert ev.compute_act_dcf(bonafide + 5, spoof + 5)[0] > ev.compute_act_dcf(bonafide, spoof)[0]
    assert ev.compute_min_dcf(bonafide, spoof)[0] <= ev.compute_act_dcf(bonafide, spoof)[0]


# ----------------------------------------------------------------------------------------------------------
# bootstrap
# ----------------------------------------------------------------------------------------------------------
def synthetic_trials(n_speakers: int, per_speaker: int = 40, seed: int = 0):
    """Bona fide N(1.5 + u, 1) and spoof N(u, 1) per speaker, with a speaker effect u ~ N(0, 0.7)."""
    rng = np.random.default_rng(seed)
    scores, labels, speakers = [], [], []
    for s in range(n_speakers):
        offset = rng.normal(0, 0.7)
        is_bonafide = np.arange(per_speaker) % 2 == 0
        scores.append(rng.normal(offset + 1.5 * is_bonafide, 1.0))
        labels.append(is_bonafide)
        speakers += [f"spk{s}"] * per_speaker
    return np.concatenate(scores), np.concatenate(labels), speakers


def test_bootstrap_ci_contains_estimate_and_narrows_with_more_speakers():
    widths = []
    for n_speakers in (6, 60):
        scores, labels, speakers = synthetic_trials(n_speakers)
        eer = 100 * ev.compute_eer(scores[labels], scores[~labels])[0]
        min_dcf = ev.compute_min_dcf(scores[labels], scores[~labels])[0]
        ci = ev.bootstrap_ci(scores, labels, speakers, n_resamples=400, seed=3)
        assert ci["resampling"] == "speakers" and ci["n_clusters"] == n_speakers and ci["note"] is None
        assert ci["eer_percent"][0] <= eer <= ci["eer_percent"][1]
        assert ci["min_dcf"][0] <= min_dcf <= ci["min_dcf"][1]
        widths.append(ci["eer_percent"][1] - ci["eer_percent"][0])
    assert widths[1] < 0.6 * widths[0], widths
    again = ev.bootstrap_ci(scores, labels, speakers, n_resamples=400, seed=3)
    assert again == ci  # fixed seed, same interval


def test_bootstrap_falls_back_to_trials_with_one_speaker():
    scores, labels, _ = synthetic_trials(1, per_speaker=200)
    ci = ev.bootstrap_ci(scores, labels, ["only"] * scores.size, n_resamples=200)
    assert ci["resampling"] == "trials" and ci["n_clusters"] == scores.size
    assert "only 1 speaker" in ci["note"]
    assert ci["eer_percent"][0] < ci["eer_percent"][1]
    assert ev.bootstrap_ci(scores, labels, None, n_resamples=50)["resampling"] == "trials"


def test_bootstrap_replicates_equal_materialised_resamples():
    """The vectorised replicates equal the official EER / minDCF on each resample built trial by trial."""
    rng = np.random.default_rng(7)
    for case in range(25):
        n, n_clusters = int(rng.integers(6, 120)), int(rng.integers(1, 9))
        clusters = rng.integers(0, n_clusters, n)
        labels = rng.random(n) < 0.5
        labels[:2] = [True, False]
        scores = rng.normal(size=n) + labels
        if case % 2:
            scores = np.round(scores * 2) / 2  # many ties
        _, clusters = np.unique(clusters, return_inverse=True)
        k = clusters.max() + 1
        draws = rng.multinomial(k, np.full(k, 1 / k), size=30)
        order = np.lexsort((~labels, scores))
        eers, dcfs = ev._bootstrap_replicates(labels[order], clusters[order], draws, 0.05, 1.0, 10.0)
        expected_eers, expected_dcfs = [], []
        for counts in draws:
            picked = np.repeat(np.arange(n), counts[clusters])
            s, l = scores[picked], labels[picked]
            if l.all() or not l.any():
                continue
            expected_eers.append(ev.compute_eer(s[l], s[~l])[0])
            expected_dcfs.append(ev.compute_min_dcf(s[l], s[~l])[0])
        np.testing.assert_allclose(eers, expected_eers, rtol=0, atol=1e-12)
        np.testing.assert_allclose(dcfs, expected_dcfs, rtol=0, atol=1e-12)


def test_bootstrap_is_fast_on_10k_trials():
    scores, labels, speakers = synthetic_trials(20, per_speaker=500)
    start = time.perf_counter()
    ci = ev.bootstrap_ci(scores, labels, speakers)  # default 1000 resamples
    assert ci["n_resamples"] == 1000
    assert time.perf_counter() - start < 5.0


# ----------------------------------------------------------------------------------------------------------
# DSES breakdown
# ----------------------------------------------------------------------------------------------------------
EMOTIONS = ["angry", "happy", "neutral", "sad", "surprise"]
SYSTEMS = ["CosyVoice", "EmoSpeech", "Zonos"]


def dses_entries():
    """4 speakers x 5 emotions: 10 bona fide and 6 spoofs per system each. Angry spoofs are trivially caught;
    EmoSpeech has no 'surprise' spoofs."""
    rng = np.random.default_rng(11)
    entries, scores = [], []
    for speaker in range(4):
        for emotion in EMOTIONS:
            for i in range(10):
                entries.append(
                    dict(
                        utt_id=f"ESD/{speaker}/{emotion}/{i}",
                        speaker=f"00{speaker}",
                        emotion=emotion,
                        system="-",
                        key="bonafide",
                    )
                )
                scores.append(rng.normal(1.0, 1.0))
            for system in SYSTEMS:
                if system == "EmoSpeech" and emotion == "surprise":
                    continue
                for i in range(6):
                    entries.append(
                        dict(
                            utt_id=f"{system}/{speaker}/{emotion}/{i}",
                            speaker=f"00{speaker}",
                            emotion=emotion,
                            system=system,
                            key="spoof",
                        )
                    )
                    scores.append(-50.0 if emotion == "angry" else rng.normal(-0.5, 1.0))
    return entries, np.array(scores)


@pytest.fixture(scope="module")
def dses_result():
    entries, scores = dses_entries()
    return entries, scores, ev.dses_breakdown(entries, scores, n_bootstrap=200, seed=1)


def test_dses_breakdown_structure_and_counts(dses_result):
    entries, scores, result = dses_result
    assert result["emotions"] == EMOTIONS and result["systems"] == SYSTEMS
    pooled = result["pooled"]
    assert (pooled["n_bonafide"], pooled["n_spoof"], pooled["n_speakers"]) == (200, 4 * (5 * 3 - 1) * 6, 4)
    for emotion in EMOTIONS:
        group = result["per_emotion"][emotion]
        assert group["n_bonafide"] == 40
        assert group["n_spoof"] == 4 * 6 * (2 if emotion == "surprise" else 3)
    assert (
        result["per_system"]["Zonos"]["n_bonafide"] == 200 and result["per_system"]["Zonos"]["n_spoof"] == 120
    )
    assert result["per_system"]["EmoSpeech"]["n_spoof"] == 96
    cell = result["per_emotion_system"]["happy"]["Zonos"]
    assert (cell["n_bonafide"], cell["n_spoof"]) == (40, 24)
    assert "EmoSpeech" not in result["per_emotion_system"]["surprise"]
    assert any("surprise x system EmoSpeech" in s for s in result["skipped"])
    json.dumps(result)


def test_dses_breakdown_values(dses_result):
    entries, scores, result = dses_result
    angry = result["per_emotion"]["angry"]
    assert (
        angry["eer_percent"] == 0.0 and angry["min_dcf"] == 0.0 and angry["ci"]["eer_percent"] == [0.0, 0.0]
    )
    for system in SYSTEMS:
        assert result["per_emotion_system"]["angry"][system]["eer_percent"] == 0.0
    # each group is the plain metric on exactly its trials
    emotion = np.array([e["emotion"] for e in entries])
    system = np.array([e["system"] for e in entries])
    bona = np.array([e["key"] == "bonafide" for e in entries])
    happy_zonos = (emotion == "happy") & (bona | (system == "Zonos"))
    b, s = scores[happy_zonos & bona], scores[happy_zonos & ~bona]
    cell = result["per_emotion_system"]["happy"]["Zonos"]
    assert cell["eer_percent"] == pytest.approx(100 * ev.compute_eer(b, s)[0])
    assert cell["min_dcf"] == pytest.approx(ev.compute_min_dcf(b, s)[0])
    assert cell["act_dcf"] == pytest.approx(ev.compute_act_dcf(b, s)[0])
    assert cell["cllr_bits"] == pytest.approx(ev.compute_cllr(b, s))
    all_bona_vs_cosy = scores[bona], scores[system == "CosyVoice"]
    assert result["per_system"]["CosyVoice"]["eer_percent"] == pytest.approx(
        100 * ev.compute_eer(*all_bona_vs_cosy)[0]
    )
    for group in [result["pooled"], *result["per_emotion"].values()]:
        low, high = group["ci"]["eer_percent"]
        assert low <= group["eer_percent"] <= high and group["ci"]["resampling"] == "speakers"


def test_dses_breakdown_accepts_score_sets_and_refuses_mismatch(dses_result):
    entries, scores, result = dses_result
    by_id = {e["utt_id"]: float(v) for e, v in zip(entries, scores)}
    again = ev.dses_breakdown(entries, by_id, n_bootstrap=200, seed=1)
    assert again["per_emotion"] == result["per_emotion"]
    score_set = ev.CMScores.from_columns(
        by_id, [e["system"] for e in entries], [e["key"] for e in entries], scores
    )
    assert ev.dses_breakdown(entries, score_set, n_bootstrap=200, seed=1)["pooled"] == result["pooled"]
    with pytest.raises(ev.ScoreProtocolMismatch, match="missing"):
        ev.dses_breakdown(entries, dict(list(by_id.items())[1:]), n_bootstrap=10)


def test_dses_breakdown_without_bootstrap(dses_result):
    entries, scores, result = dses_result
    quick = ev.dses_breakdown(entries, scores, n_bootstrap=0)
    assert quick["pooled"]["ci"] is None and quick["per_emotion_system"]["happy"]["Zonos"]["ci"] is None
    assert quick["pooled"]["eer_percent"] == result["pooled"]["eer_percent"]
    text = ev.format_dses_markdown(quick)
    assert "No confidence intervals" in text and "| all | 200 | 336 | 4 |" in text


def test_format_dses_markdown(dses_result):
    text = ev.format_dses_markdown(dses_result[2])
    assert "### Per emotion" in text and "### Per TTS system" in text and "emotion x system" in text
    assert "| emotion | CosyVoice | EmoSpeech | Zonos |" in text
    angry_row = next(line for line in text.splitlines() if line.startswith("| angry | 40 |"))
    assert "| 0.00 | [0.00, 0.00] | 0.0000 |" in angry_row
    surprise_grid = [line for line in text.splitlines() if line.startswith("| surprise |")][-1]
    assert surprise_grid.split("|")[3].strip() == "–"  # no EmoSpeech surprise spoofs
    assert "bootstrap over speakers" in text


def test_plot_det_writes_a_png_per_emotion(tmp_path, dses_result):
    entries, scores, _ = dses_result
    keep = [
        i for i, e in enumerate(entries) if e["emotion"] in ("happy", "sad")
    ]  # two are enough, and faster
    paths = ev.plot_det([entries[i] for i in keep], scores[keep], tmp_path / "det")
    assert [p.name for p in paths] == ["det_happy.png", "det_sad.png"]
    for path in paths:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
