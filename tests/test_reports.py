"""antispoof.reports and antispoof.figures: the ASVspoof 2019 LA report (parity with the official code) and the
DSES tables and DET plots."""

import json

import numpy as np
import pytest
from conftest import shared_path
from score_cases import ASV_EVAL, EVAL_ATTACKS, FIXTURE_REFERENCE, FIXTURE_SCORES, assert_rel

from antispoof import figures, reports
from antispoof.breakdown import BreakdownSettings, ScoredRun, breakdown
from antispoof.metadata import DSES_COLUMNS, TrialTable
from antispoof.metrics import compute_act_dcf, compute_cllr, compute_eer, compute_min_dcf
from antispoof.scorefiles import ProtocolEntry, ScoreProtocolMismatch, read_score_file, write_score_file


# ----------------------------------------------------------------------------------------------------------
# parity with the official ASVspoof 2019 evaluation code
# ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reference():
    with open(shared_path(*FIXTURE_REFERENCE)) as f:
        return json.load(f)["cm_scores_public_seed7.txt"]


def test_fixture_reproduced_to_1e6(reference):
    result = reports.evaluate_asvspoof2019(shared_path(*FIXTURE_SCORES), shared_path(*ASV_EVAL))
    assert (result["n_trials"], result["n_bonafide"], result["n_spoof"]) == (71237, 7355, 63882)
    assert_rel(result["eer_percent"], reference["eer_percent"])
    assert_rel(result["min_tdcf"], reference["min_tdcf"])
    assert list(result["per_attack_eer_percent"]) == EVAL_ATTACKS
    for attack, expected in reference["per_attack_eer_percent"].items():
        assert_rel(result["per_attack_eer_percent"][attack], expected)
        assert result["per_attack_n_spoof"][attack] == 4914
    json.dumps(result)  # main.py saves it
    # to the last digit: the reference holds the official code's floats (per attack rounded to 9 decimals)
    assert (result["eer_percent"], result["min_tdcf"]) == (reference["eer_percent"], reference["min_tdcf"])
    for attack, expected in reference["per_attack_eer_percent"].items():
        assert round(result["per_attack_eer_percent"][attack], 9) == expected


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

    def add(folder: str, speaker: int, emotion: str, i: int, score: float) -> None:
        system, key = ("-", "bonafide") if folder == "ESD" else (folder, "spoof")
        utt_id = f"{folder}/{speaker}/{emotion}/{i}"
        entries.append(dict(utt_id=utt_id, speaker=f"00{speaker}", emotion=emotion, system=system, key=key))
        scores.append(score)

    for speaker in range(4):
        for emotion in EMOTIONS:
            for i in range(10):
                add("ESD", speaker, emotion, i, rng.normal(1.0, 1.0))
            for system in SYSTEMS:
                if system == "EmoSpeech" and emotion == "surprise":
                    continue
                for i in range(6):
                    add(system, speaker, emotion, i, -50.0 if emotion == "angry" else rng.normal(-0.5, 1.0))
    return entries, np.array(scores)


def dses_table(entries) -> TrialTable:
    return TrialTable.from_columns({name: [e[name] for e in entries] for name in DSES_COLUMNS})


DSES_GROUPS = ["emotion", "system", "emotion:system"]


def dses_breakdown(table, scores, n_bootstrap=200, seed=1):
    """The DSES breakdown main.py writes: by emotion, system and emotion x system, neutral as reference."""
    settings = BreakdownSettings(n_bootstrap=n_bootstrap, seed=seed)
    return breakdown(table, [ScoredRun(scores, 0.0)], DSES_GROUPS, "neutral", settings)


@pytest.fixture(scope="module")
def dses_result():
    entries, scores = dses_entries()
    return entries, scores, dses_breakdown(dses_table(entries), scores)


def test_dses_breakdown_structure_and_counts(dses_result):
    entries, scores, result = dses_result
    groups = result["groups"]
    assert list(groups["emotion"]) == EMOTIONS and list(groups["system"]) == SYSTEMS
    pooled = result["pooled"]
    assert (pooled["n_bonafide"], pooled["n_spoof"], pooled["n_speakers"]) == (200, 4 * (5 * 3 - 1) * 6, 4)
    for emotion in EMOTIONS:
        group = groups["emotion"][emotion]
        assert group["n_bonafide"] == 40
        assert group["n_spoof"] == 4 * 6 * (2 if emotion == "surprise" else 3)
    assert groups["system"]["Zonos"]["n_bonafide"] == 200 and groups["system"]["Zonos"]["n_spoof"] == 120
    assert groups["system"]["EmoSpeech"]["n_spoof"] == 96
    cell = groups["emotion:system"]["happy:Zonos"]
    assert (cell["n_bonafide"], cell["n_spoof"]) == (40, 24)
    assert "surprise:EmoSpeech" not in groups["emotion:system"]
    json.dumps(result)


def test_dses_breakdown_values(dses_result):
    entries, scores, result = dses_result
    groups = result["groups"]
    angry = groups["emotion"]["angry"]
    assert angry["eer_percent"] == 0.0 and angry["min_dcf"] == 0.0 and angry["eer_ci"] == [0.0, 0.0]
    for system in SYSTEMS:
        assert groups["emotion:system"][f"angry:{system}"]["eer_percent"] == 0.0
    # each group is the plain metric on exactly its trials
    emotion = np.array([e["emotion"] for e in entries])
    system = np.array([e["system"] for e in entries])
    bona = np.array([e["key"] == "bonafide" for e in entries])
    happy_zonos = (emotion == "happy") & (bona | (system == "Zonos"))
    b, s = scores[happy_zonos & bona], scores[happy_zonos & ~bona]
    cell = groups["emotion:system"]["happy:Zonos"]
    assert cell["eer_percent"] == pytest.approx(100 * compute_eer(b, s)[0])
    assert cell["min_dcf"] == pytest.approx(compute_min_dcf(b, s)[0])
    assert cell["act_dcf"] == pytest.approx(compute_act_dcf(b, s)[0])
    assert cell["cllr_bits"] == pytest.approx(compute_cllr(b, s))
    all_bona_vs_cosy = scores[bona], scores[system == "CosyVoice"]
    assert groups["system"]["CosyVoice"]["eer_percent"] == pytest.approx(
        100 * compute_eer(*all_bona_vs_cosy)[0]
    )
    for group in [result["pooled"], *groups["emotion"].values()]:
        low, high = group["eer_ci"]
        assert low <= group["eer_percent"] <= high
    assert result["settings"]["resampling"] == "speakers"


def test_dses_breakdown_of_a_score_file_and_mismatch_refused(dses_result, tmp_path):
    entries, scores, result = dses_result
    table = dses_table(entries)
    trials = [ProtocolEntry(e["speaker"], e["utt_id"], e["system"], e["key"]) for e in entries]
    shuffled = np.random.default_rng(0).permutation(len(entries))  # a score file's order is free
    path = write_score_file(tmp_path / "dses_scores.txt", [trials[i] for i in shuffled], scores[shuffled])
    aligned = table.scores_of(read_score_file(path), path)
    np.testing.assert_array_equal(aligned, scores)
    again = dses_breakdown(table, aligned)
    assert again["groups"]["emotion"] == result["groups"]["emotion"] and again["pooled"] == result["pooled"]
    short = write_score_file(tmp_path / "short.txt", trials[1:], scores[1:])
    with pytest.raises(ScoreProtocolMismatch, match="missing"):
        table.scores_of(read_score_file(short), short)
    with pytest.raises(ValueError, match=f"{len(entries) - 1}"):
        dses_breakdown(table, scores[1:], n_bootstrap=10)


def test_dses_breakdown_without_bootstrap(dses_result):
    entries, scores, result = dses_result
    quick = dses_breakdown(dses_table(entries), scores, n_bootstrap=0)
    assert (
        quick["pooled"]["eer_ci"] is None
        and quick["groups"]["emotion:system"]["happy:Zonos"]["eer_ci"] is None
    )
    assert quick["pooled"]["eer_percent"] == result["pooled"]["eer_percent"]
    text = reports.format_breakdown_markdown(quick)
    assert "No confidence intervals" in text


def test_dses_markdown_and_verdict(dses_result):
    text = reports.format_breakdown_markdown(dses_result[2])
    assert "### By emotion" in text and "### By system" in text and "### By emotion:system" in text
    assert "bootstrap over speakers" in text
    verdict = reports.emotion_verdict(dses_result[2])
    # angry spoofs are all caught: its EER falls against neutral; 4 speakers are too few for significance
    assert verdict.startswith("Verdict (emotion vs neutral, Holm-corrected, 4 speakers)")


def test_plot_det_writes_a_png_per_emotion(tmp_path, dses_result):
    entries, scores, _ = dses_result
    keep = [
        i for i, e in enumerate(entries) if e["emotion"] in ("happy", "sad")
    ]  # two are enough, and faster
    paths = figures.plot_det(dses_table([entries[i] for i in keep]), scores[keep], tmp_path / "det")
    assert [p.name for p in paths] == ["det_happy.png", "det_sad.png"]
    for path in paths:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_breakdown_markdown_tables_and_notes():
    from emotion_cases import planted_table

    from antispoof.breakdown import BreakdownSettings, ScoredRun, breakdown

    table, scores = planted_table(n_speakers=2, per_cell=5)
    result = breakdown(
        table, [ScoredRun(scores, 0.0)], ["emotion"], "neutral", BreakdownSettings(n_bootstrap=50)
    )
    result["threshold_source"] = "given on the command line (--threshold)"
    text = reports.format_breakdown_markdown(result, title="DSES")
    assert text.startswith("## DSES\n") and "### By emotion" in text
    sad = result["groups"]["emotion"]["sad"]
    row = next(line for line in text.splitlines() if line.startswith("| sad | 10 | 20 | 2 |"))
    assert f"{sad['bonafide_rejection_percent']:.2f} {reports.ci_text(sad['bonafide_rejection_ci'])}" in row
    assert "Against **neutral**" in text and "Holm over the 4 comparisons" in text
    assert "Fixed threshold: 0 (given on the command line (--threshold))" in text
    assert "Only 2 speakers to resample: the CIs and p-values are rough" in text
