"""evaluation.py, the command line: ASVspoof 2019 reports, exit codes, and the call forms main.py uses."""

import json
import re
import resource
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO_ROOT, shared_path
from emotion_cases import GROUP_FIELDS, VERSUS_FIELDS
from score_cases import (
    ASV_EVAL,
    DUPLICATE_IN_FILE,
    FIXTURE_REFERENCE,
    FIXTURE_SCORES,
    GOOD_SCORES,
    MISMATCHES,
    PROTOCOL_EVAL,
    assert_rel,
    write_protocol,
    write_rows,
)

import evaluation as ev

CLI = [sys.executable, str(REPO_ROOT / "evaluation.py")]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)


@pytest.fixture
def small_protocol(tmp_path):
    return write_protocol(tmp_path)


@pytest.fixture(scope="module")
def reference():
    with open(shared_path(*FIXTURE_REFERENCE)) as f:
        return json.load(f)["cm_scores_public_seed7.txt"]


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
    if case == "duplicate":  # the score file itself is refused, before any protocol is read
        message = DUPLICATE_IN_FILE
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


def test_cli_refuses_duplicate_ids_without_protocol(tmp_path, capsys):
    """A repeated id would silently change the EER: refused in any score file, with the file, line and id."""
    scores = write_rows(tmp_path / "scores.txt", MISMATCHES["duplicate"][0])
    assert ev.main(["--cm_scores", str(scores)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert re.search(DUPLICATE_IN_FILE, captured.err) and str(scores) in captured.err
    proc = run_cli("--cm_scores", scores, "--json")
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert re.search(DUPLICATE_IN_FILE, proc.stderr)


def test_help_lists_exit_codes():
    proc = run_cli("--help")
    assert proc.returncode == 0
    epilog = proc.stdout[proc.stdout.index("exit codes:") :]
    for code in ("0", "1", "2"):
        assert re.search(rf"^  {code}  \S", epilog, re.MULTILINE), epilog
    assert "more than once" in epilog or "repeated" in epilog


# ----------------------------------------------------------------------------------------------------------
# what main.py hands the library
# ----------------------------------------------------------------------------------------------------------
def test_dses_breakdown_and_plot_det_of_trial_objects(tmp_path):
    """What main.py hands the library: Trial objects; the generic breakdown and DET plots take them."""
    from antispoof.breakdown import BreakdownSettings, ScoredRun, breakdown
    from antispoof.figures import plot_det
    from antispoof.metadata import TrialTable
    from antispoof.protocols import Trial
    from antispoof.reports import format_breakdown_markdown

    rng = np.random.default_rng(0)
    trials = [
        Trial(
            f"{system}/{spk}/{emotion}/{i}",
            spk,
            system,
            "bonafide" if system == "-" else "spoof",
            tmp_path,
            emotion,
        )
        for spk in ("a", "b")
        for emotion in ("happy", "sad")
        for system in ("-", "Zonos")
        for i in range(5)
    ]
    scores = np.array([rng.normal(1.0 if t.key == "bonafide" else -1.0) for t in trials])
    table = TrialTable.from_trials(trials)
    result = breakdown(
        table, [ScoredRun(scores, 0.0)], ["emotion", "system"], "happy", BreakdownSettings(n_bootstrap=0)
    )
    assert set(result["groups"]["emotion"]) == {"happy", "sad"} and set(result["groups"]["system"]) == {
        "Zonos"
    }
    assert result["pooled"]["n_bonafide"] == 20 and result["pooled"]["n_speakers"] == 2
    assert "| sad | 10 | 10 | 2 |" in format_breakdown_markdown(result)
    paths = plot_det(table, scores, tmp_path / "det")
    assert [p.name for p in paths] == ["det_happy.png", "det_sad.png"]


# ----------------------------------------------------------------------------------------------------------
# --metadata: breakdown by any column, fixed threshold, calibration, seeds
# ----------------------------------------------------------------------------------------------------------
@pytest.fixture
def dses_files(tmp_path):
    """dses_protocol.tsv (as main.py writes it), two seeds' score files and a dev score file."""
    from emotion_cases import planted_trials, write_dev_scores, write_metadata, write_scores

    columns, scores = planted_trials(n_speakers=10, per_cell=6)
    metadata = write_metadata(tmp_path / "dses" / "dses_protocol.tsv", columns)
    seed1 = write_scores(tmp_path / "seed1.txt", columns, scores)
    seed2 = write_scores(
        tmp_path / "seed2.txt", columns, planted_trials(n_speakers=10, per_cell=6, seed=5)[1]
    )
    dev = write_dev_scores(tmp_path / "dev_scores.txt", scale=3.0)
    return {"metadata": metadata, "scores": [seed1, seed2], "dev": dev, "tmp": tmp_path}


def breakdown_json(capsys, *args) -> dict:
    assert ev.main([*map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_breakdown_json_contract(dses_files, capsys):
    f = dses_files
    result = breakdown_json(
        capsys,
        "--cm_scores",
        f["scores"][0],
        "--metadata",
        f["metadata"],
        "--group_by",
        "emotion,system",
        "--threshold_from",
        f["dev"],
        "--n_bootstrap",
        "300",
    )
    dev_bonafide, dev_spoof = ev.read_score_file(f["dev"]).by_class()
    assert result["threshold"] == ev.compute_eer(dev_bonafide, dev_spoof)[1]
    assert result["threshold_source"] == f"EER threshold of {f['dev']}"
    assert set(result["groups"]) == {"emotion", "system"} and result["reference_group"] == "neutral"
    sad = result["groups"]["emotion"]["sad"]
    versus = sad["vs_reference"]
    assert GROUP_FIELDS <= set(sad) and VERSUS_FIELDS <= set(versus)  # the JSON contract
    assert versus["significant_bonafide_rejection"] and not result["calibrated"]


def test_cli_breakdown_markdown_threshold_and_seeds(dses_files, capsys):
    f = dses_files
    args = ["--cm_scores", *map(str, f["scores"]), "--metadata", str(f["metadata"]), "--threshold", "0.5"]
    assert ev.main([*args, "--n_bootstrap", "100"]) == 0
    text = capsys.readouterr().out
    assert (
        "### By emotion" in text and "Against **neutral**" in text and "Fixed threshold: 0.5 (given" in text
    )
    assert "EER (%) mean ± std" in text and "2 runs over the same trials" in text
    result = breakdown_json(capsys, *args, "--n_bootstrap", "0")
    assert result["threshold"] == 0.5 and result["n_runs"] == 2
    assert result["groups"]["emotion"]["sad"]["across_runs"]["n_runs"] == 2
    assert result["groups"]["emotion"]["sad"]["eer_ci"] is None


def test_cli_calibration_fit_save_and_apply(dses_files, capsys):
    f = dses_files
    saved = f["tmp"] / "calibration.json"
    fitted = breakdown_json(capsys, "--calibrate_on", f["dev"], "--save_calibration", saved)
    assert json.loads(saved.read_text())["slope"] == fitted["slope"] and fitted["prior"] == 0.5
    common = ["--cm_scores", f["scores"][0], "--metadata", f["metadata"], "--n_bootstrap", "0"]
    applied = breakdown_json(capsys, *common, "--calibration", saved)
    fitted_here = breakdown_json(capsys, *common, "--calibrate_on", f["dev"])
    raw = breakdown_json(capsys, *common)
    assert applied["calibrated"] and applied["calibration_source"] == str(saved)
    assert (
        applied["groups"]["emotion"]["sad"]["cllr_bits"]
        == fitted_here["groups"]["emotion"]["sad"]["cllr_bits"]
    )
    assert (
        applied["groups"]["emotion"]["happy"]["cllr_bits"] != raw["groups"]["emotion"]["happy"]["cllr_bits"]
    )
    assert "pooled EER threshold of the scores themselves" in raw["threshold_source"]


def test_cli_breakdown_errors(dses_files, capsys):
    f = dses_files
    lines = f["metadata"].read_text().splitlines()
    short = f["tmp"] / "short.tsv"
    short.write_text("\n".join(lines[:-1]) + "\n")  # one trial fewer than the score file
    assert ev.main(["--cm_scores", str(f["scores"][0]), "--metadata", str(short)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "scores do not match the metadata" in err and "not in the metadata" in err
    broken = f["tmp"] / "broken.tsv"
    broken.write_text(lines[0] + "\n" + lines[1].replace("bonafide", "real") + "\n")
    assert ev.main(["--cm_scores", str(f["scores"][0]), "--metadata", str(broken)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "broken.tsv:2: key 'real' is not bonafide|spoof" in err
    args = ["--cm_scores", str(f["scores"][0]), "--metadata", str(f["metadata"]), "--group_by", "gender"]
    assert ev.main(args) == 1
    assert "no column 'gender'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metadata", "m.tsv"], "give --cm_scores, --compare or --calibrate_on"),
        (["--cm_scores", "a.txt", "b.txt"], "several --cm_scores (seeds) need --metadata"),
        (["--compare", "exp"], "--compare and --out go together"),
        (["--cm_scores", "a", "--threshold", "1", "--threshold_from", "d"], "not allowed with argument"),
        (
            ["--cm_scores", "a", "b", "c", "--metadata", "m", "--threshold_from", "d", "e"],
            "one per --cm_scores",
        ),
        (["--calibrate_on", "a", "b", "--save_calibration", "c.json"], "exactly one --calibrate_on"),
    ],
)
def test_cli_usage_errors_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as info:
        ev.main(args)
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_cli_n_permutations_sets_the_random_swaps_and_zero_turns_p_values_off(dses_files, capsys):
    f = dses_files
    common = ["--cm_scores", f["scores"][0], "--metadata", f["metadata"], "--n_bootstrap", "50"]
    tested = breakdown_json(capsys, *common, "--n_permutations", "200")
    assert tested["settings"]["n_permutations"] == 200
    assert tested["groups"]["emotion"]["sad"]["vs_reference"]["p_bonafide_rejection"] is not None
    untested = breakdown_json(capsys, *common, "--n_permutations", "0")
    assert untested["settings"]["n_permutations"] == 0
    assert untested["groups"]["emotion"]["sad"]["vs_reference"]["p_bonafide_rejection"] is None
    with pytest.raises(SystemExit) as refused:
        ev.main([*map(str, common), "--n_permutations", "-1"])
    assert refused.value.code == 2 and "--n_permutations must be >= 0" in capsys.readouterr().err
