"""antispoof.breakdown: per-group EER, fixed-threshold error rates, paired speaker bootstrap, randomisation
p-values, Holm, seeds."""

import json
import time

import numpy as np
import pytest
from emotion_cases import EMOTIONS, GROUP_FIELDS, VERSUS_FIELDS, planted_table, planted_trials

from antispoof import metrics
from antispoof.breakdown import BreakdownSettings, ScoredRun, breakdown, fixed_threshold
from antispoof.metadata import TrialTable
from antispoof.scorefiles import CMScores


def neutral_eer_threshold(table: TrialTable, scores: np.ndarray) -> float:
    """A deployed detector's operating point: here the EER threshold of the neutral trials (a stand-in for dev)."""
    neutral = table.columns["emotion"] == "neutral"
    return metrics.compute_eer(scores[neutral & table.is_bonafide], scores[neutral & ~table.is_bonafide])[1]


@pytest.fixture(scope="module")
def planted():
    table, scores = planted_table()  # 10 speakers x 5 emotions; sad: all scores down; angry: spoofs up
    threshold = neutral_eer_threshold(table, scores)
    start = time.perf_counter()
    result = breakdown(table, [ScoredRun(scores, threshold)], ["emotion", "system"], "neutral")
    return table, scores, result, time.perf_counter() - start


def test_planted_effects_are_found_and_nothing_else(planted):
    """The acceptance test of issue 12: a shift of bona fide and spoof together raises the bona fide rejection
    at the fixed threshold but not the EER; spoofs shifted up raise the EER."""
    _, _, result, _ = planted
    emotion = result["groups"]["emotion"]
    sad, angry = emotion["sad"]["vs_reference"], emotion["angry"]["vs_reference"]
    assert sad["significant_bonafide_rejection"] and sad["delta_bonafide_rejection_percent"] > 30
    assert sad["delta_bonafide_rejection_ci"][0] > 0 and sad["p_bonafide_rejection_holm"] < 0.05
    assert not sad["significant_eer"] and sad["delta_eer_ci"][0] < 0 < sad["delta_eer_ci"][1]
    assert angry["significant_eer"] and angry["delta_eer_percent"] > 10 and angry["delta_eer_ci"][0] > 0
    assert not angry["significant_bonafide_rejection"]  # real angry speech is still accepted
    for name in ("happy", "surprise"):  # no effect planted
        versus = emotion[name]["vs_reference"]
        assert not versus["significant_eer"] and not versus["significant_bonafide_rejection"]
    assert "vs_reference" not in emotion["neutral"]
    assert emotion["angry"]["spoof_acceptance_percent"] > 5 * emotion["neutral"]["spoof_acceptance_percent"]


def test_json_contract(planted):
    _, _, result, _ = planted
    parsed = json.loads(json.dumps(result, allow_nan=False))  # strict JSON: no NaN anywhere
    assert isinstance(parsed["threshold"], float)
    assert list(parsed["groups"]) == ["emotion", "system"]
    assert list(parsed["groups"]["emotion"]) == sorted(EMOTIONS)
    for name, group in parsed["groups"]["emotion"].items():
        assert GROUP_FIELDS <= set(group), name
        assert (
            group["n_bonafide"] == 10 * 30 and group["n_spoof"] == 10 * 2 * 30 and group["n_speakers"] == 10
        )
        for field in ("eer", "bonafide_rejection", "spoof_acceptance"):
            low, high = group[f"{field}_ci"]
            assert low <= group[f"{field}_percent"] <= high
        if name != "neutral":
            assert VERSUS_FIELDS <= set(group["vs_reference"])
    # a column without the reference group gets no comparison: all bona fide against each TTS system
    systems = parsed["groups"]["system"]
    assert set(systems) == {"CosyVoice", "Zonos"} and all("vs_reference" not in g for g in systems.values())
    assert systems["Zonos"]["n_bonafide"] == 5 * 10 * 30 and systems["Zonos"]["n_spoof"] == 5 * 10 * 30


def test_bootstrap_is_fast(planted):
    _, _, result, seconds = planted
    assert result["settings"]["n_bootstrap"] == 1000
    assert seconds < 10, f"breakdown with 1000 resamples took {seconds:.1f} s"


def hand_table():
    """Two speakers; neutral separates perfectly, sad interleaves (hand-computed below)."""
    columns = {
        "utt_id": [f"u{i}" for i in range(8)],
        "speaker": ["a", "b"] * 4,
        "emotion": ["neutral"] * 4 + ["sad"] * 4,
        "key": ["bonafide", "bonafide", "spoof", "spoof"] * 2,
    }
    scores = np.array([2.0, 4.0, -1.0, 0.5, 1.0, 3.0, 0.0, 2.0])
    return TrialTable.from_columns(columns), scores


def test_hand_computed_groups():
    table, scores = hand_table()
    result = breakdown(
        table, [ScoredRun(scores, 1.5)], ["emotion"], "neutral", BreakdownSettings(n_bootstrap=0)
    )
    neutral, sad = result["groups"]["emotion"]["neutral"], result["groups"]["emotion"]["sad"]
    # neutral: bona fide {2, 4} above spoofs {-1, 0.5}: EER 0; at 1.5 nothing is wrong
    assert (
        neutral["eer_percent"],
        neutral["bonafide_rejection_percent"],
        neutral["spoof_acceptance_percent"],
    ) == (
        0.0,
        0.0,
        0.0,
    )
    # sad: sorted 0 (spoof), 1 (bona fide), 2 (spoof), 3 (bona fide): EER 50 %; at 1.5 the bona fide 1.0 is
    # rejected and the spoof 2.0 accepted
    assert (sad["eer_percent"], sad["bonafide_rejection_percent"], sad["spoof_acceptance_percent"]) == (
        50.0,
        50.0,
        50.0,
    )
    assert sad["min_dcf"] == metrics.compute_min_dcf([1.0, 3.0], [0.0, 2.0])[0]
    assert sad["act_dcf"] == metrics.compute_act_dcf([1.0, 3.0], [0.0, 2.0])[0]
    assert sad["cllr_bits"] == metrics.compute_cllr([1.0, 3.0], [0.0, 2.0])
    versus = sad["vs_reference"]
    assert (versus["delta_eer_percent"], versus["delta_bonafide_rejection_percent"]) == (50.0, 50.0)
    assert versus["delta_eer_ci"] is None and versus["p_eer"] is None and versus["significant_eer"] is None
    assert result["pooled"]["n_bonafide"] == 4 and result["pooled"]["bonafide_rejection_percent"] == 25.0


def test_calibrated_llrs_are_used_for_act_dcf_and_cllr_only():
    table, scores = hand_table()
    llrs = 3 * scores - 2
    run = ScoredRun(scores, 1.5, llrs=llrs)
    result = breakdown(table, [run], ["emotion"], None, BreakdownSettings(n_bootstrap=0))
    sad = result["groups"]["emotion"]["sad"]
    assert result["calibrated"] and sad["eer_percent"] == 50.0 and sad["bonafide_rejection_percent"] == 50.0
    assert sad["act_dcf"] == metrics.compute_act_dcf(llrs[[4, 5]], llrs[[6, 7]])[0]
    assert sad["cllr_bits"] == metrics.compute_cllr(llrs[[4, 5]], llrs[[6, 7]])


def materialised_deltas(table, scores, threshold, group, draws):
    """Delta EER and delta bona fide rejection (group - neutral) of each resample, built trial by trial."""
    _, speaker = np.unique(table.columns["speaker"], return_inverse=True)
    emotion, bona = table.columns["emotion"], table.is_bonafide
    deltas = []
    for counts in draws:
        copies = counts[speaker]
        values = {}
        for name in (group, "neutral"):
            picked = np.repeat(np.flatnonzero(emotion == name), copies[emotion == name])
            s, b = scores[picked], bona[picked]
            eer = 100 * metrics.compute_eer(s[b], s[~b])[0]
            values[name] = (eer, 100 * np.mean(s[b] < threshold))
        deltas.append([values[group][k] - values["neutral"][k] for k in (0, 1)])
    return np.array(deltas)


def test_paired_bootstrap_equals_resamples_built_by_hand():
    table, scores = planted_table(n_speakers=4, per_cell=3, seed=4)
    threshold = neutral_eer_threshold(table, scores)
    settings = BreakdownSettings(n_bootstrap=40, seed=9)
    result = breakdown(table, [ScoredRun(scores, threshold)], ["emotion"], "neutral", settings)
    draws = metrics.cluster_draws(4, 40, seed=9)  # speakers in sorted order, as the breakdown draws them
    for group in ("sad", "angry"):
        expected = materialised_deltas(table, scores, threshold, group, draws)
        versus = result["groups"]["emotion"][group]["vs_reference"]
        assert versus["delta_eer_ci"] == pytest.approx(metrics.percentile_interval(expected[:, 0], 0.95))
        assert versus["delta_bonafide_rejection_ci"] == pytest.approx(
            metrics.percentile_interval(expected[:, 1], 0.95)
        )


def swapped_deltas(table, scores, threshold, group, speakers=None):
    """Delta EER and delta bona fide rejection (group - neutral) for each of the 2^K patterns of ``speakers``
    (default: all) whose group and neutral trials trade places (pattern i swaps the speakers whose bit is set in
    i), built by hand."""
    speakers = sorted(set(table.columns["speaker"])) if speakers is None else speakers
    emotion, speaker, bona = table.columns["emotion"], table.columns["speaker"], table.is_bonafide
    deltas = []
    for pattern in range(2 ** len(speakers)):
        swapped = {name for bit, name in enumerate(speakers) if pattern >> bit & 1}
        is_swapped = np.isin(speaker, list(swapped))
        as_group = ((emotion == group) & ~is_swapped) | ((emotion == "neutral") & is_swapped)
        as_neutral = ((emotion == "neutral") & ~is_swapped) | ((emotion == group) & is_swapped)
        values = []
        for picked in (as_group, as_neutral):
            s, b = scores[picked], bona[picked]
            values.append((100 * metrics.compute_eer(s[b], s[~b])[0], 100 * np.mean(s[b] < threshold)))
        deltas.append([values[0][k] - values[1][k] for k in (0, 1)])
    return np.array(deltas)


def test_randomisation_p_values_equal_speaker_swaps_built_by_hand():
    """Four speakers: all 16 swap patterns are listed, so p is exact: the share of the patterns whose
    difference is at least as far from the patterns' mean difference as the observed one."""
    table, scores = planted_table(n_speakers=4, per_cell=3, seed=4)
    threshold = neutral_eer_threshold(table, scores)
    settings = BreakdownSettings(n_bootstrap=40, seed=9)
    result = breakdown(table, [ScoredRun(scores, threshold)], ["emotion"], "neutral", settings)
    p_values = []
    for group in ("sad", "angry", "happy"):
        deltas = swapped_deltas(table, scores, threshold, group)
        versus = result["groups"]["emotion"][group]["vs_reference"]
        for column, short in ((0, "eer"), (1, "bonafide_rejection")):
            distance = np.abs(deltas[:, column] - deltas[:, column].mean())
            expected = np.count_nonzero(distance >= distance[0] - 1e-9) / 16
            assert versus[f"p_{short}"] == pytest.approx(expected), (group, short)
            assert versus[f"delta_{short}_percent"] == pytest.approx(deltas[0, column])
            p_values.append(expected)
    assert min(p_values) == 2 / 16 and max(p_values) > 0.2  # the observed and its mirror; not all extreme


def test_a_speaker_lacking_a_group_is_not_swapped_and_nested_speakers_give_no_p_value():
    columns, scores = planted_trials(n_speakers=4, per_cell=4, seed=2)
    keep = ~((np.array(columns["speaker"]) == "0014") & (np.array(columns["emotion"]) == "sad"))
    table = TrialTable.from_columns({name: np.array(values)[keep] for name, values in columns.items()})
    scores = scores[keep]
    threshold = neutral_eer_threshold(table, scores)
    result = breakdown(table, [ScoredRun(scores, threshold)], ["emotion"], "neutral", BreakdownSettings(20))
    sad = result["groups"]["emotion"]["sad"]["vs_reference"]
    # speaker 0014 has no sad trials: its neutral trials stay neutral in all 8 patterns of the other three
    deltas = swapped_deltas(table, scores, threshold, "sad", speakers=["0011", "0012", "0013"])
    for column, short in ((0, "eer"), (1, "bonafide_rejection")):
        distance = np.abs(deltas[:, column] - deltas[:, column].mean())
        assert sad[f"p_{short}"] == pytest.approx(np.count_nonzero(distance >= distance[0] - 1e-9) / 8)
    # every speaker holds only one emotion: no within-speaker comparison exists, so no p-value (CIs remain)
    nested = {name: np.array(values) for name, values in columns.items()}
    nested["speaker"] = np.where(nested["emotion"] == "sad", "s_sad", np.char.add("s_", nested["speaker"]))
    full_scores = planted_trials(n_speakers=4, per_cell=4, seed=2)[1]
    result = breakdown(TrialTable.from_columns(nested), [ScoredRun(full_scores, 0.0)], ["emotion"])
    sad = result["groups"]["emotion"]["sad"]["vs_reference"]
    assert sad["p_eer"] is None and sad["significant_bonafide_rejection"] is None
    assert sad["delta_bonafide_rejection_ci"] is not None
    json.dumps(result, allow_nan=False)


def test_seeds_pool_trials_and_report_mean_and_std():
    table, _ = planted_table(n_speakers=10, per_cell=6)
    runs = []
    for seed in (1, 2, 3):
        _, scores = planted_table(n_speakers=10, per_cell=6, seed=seed)
        scaled = 2.0 * seed * scores + seed  # each seed its own scale and offset
        runs.append(ScoredRun(scaled, neutral_eer_threshold(table, scaled), name=f"seed{seed}"))
    settings = BreakdownSettings(n_bootstrap=200)
    result = breakdown(table, runs, ["emotion"], "neutral", settings)
    assert result["n_runs"] == 3 and result["threshold"] == [run.threshold for run in runs]
    singles = [
        breakdown(table, [run], ["emotion"], "neutral", BreakdownSettings(n_bootstrap=0)) for run in runs
    ]
    for emotion, group in result["groups"]["emotion"].items():
        per_run = [single["groups"]["emotion"][emotion] for single in singles]
        across = group["across_runs"]
        for metric in ("eer_percent", "bonafide_rejection_percent", "act_dcf"):
            values = [run[metric] for run in per_run]
            assert across[f"{metric}_runs"] == pytest.approx(values)
            assert across[f"{metric}_mean"] == pytest.approx(np.mean(values))
            assert across[f"{metric}_std"] == pytest.approx(np.std(values, ddof=1))
        # pooled rates: every run decides at its own threshold
        assert group["bonafide_rejection_percent"] == pytest.approx(
            np.mean([r["bonafide_rejection_percent"] for r in per_run])
        )
        assert group["n_bonafide"] == per_run[0]["n_bonafide"]  # counts are of the trials, not of the runs
    assert result["groups"]["emotion"]["sad"]["vs_reference"]["significant_bonafide_rejection"]


def test_groups_lacking_a_class_are_skipped_and_one_speaker_resamples_trials():
    table = TrialTable.from_columns(
        {
            "utt_id": ["a", "b", "c", "d", "e"],
            "speaker": ["s"] * 5,
            "key": ["bonafide", "spoof", "bonafide", "spoof", "bonafide"],
            "emotion": ["sad", "sad", "happy", "happy", "angry"],
        }
    )
    result = breakdown(table, [ScoredRun(np.array([1.0, 0.0, 2.0, 3.0, 1.0]), 0.5)], ["emotion"], "sad")
    assert set(result["groups"]["emotion"]) == {"happy", "sad"}
    assert result["skipped"] == ["emotion angry (1 bona fide, 0 spoof)"]
    assert result["settings"]["resampling"].startswith("trials")
    json.dumps(result, allow_nan=False)  # resamples lacking a class leave no NaN in the output


def test_fixed_threshold_sources():
    table, scores = hand_table()
    dev = CMScores.from_columns(
        ["d1", "d2", "d3"], ["-", "A01", "A02"], ["bonafide", "spoof", "spoof"], [5, 1, 2]
    )
    # the official EER threshold of dev (spoofs 1 and 2, bona fide 5) is the score 2
    assert fixed_threshold(table, scores, dev, "dev.txt", given=9.0) == (2.0, "EER threshold of dev.txt")
    assert fixed_threshold(table, scores, given=9.0)[0] == 9.0
    threshold, source = fixed_threshold(table, scores)
    assert threshold == metrics.compute_eer(scores[table.is_bonafide], scores[~table.is_bonafide])[1]
    assert "optimistic" in source


def test_few_speakers_cannot_make_a_difference_significant():
    """Two speakers: every resample may show the planted rise, but no test over two speakers can give p < 0.5."""
    table, scores = planted_table(n_speakers=2, per_cell=20)
    threshold = neutral_eer_threshold(table, scores)
    result = breakdown(
        table, [ScoredRun(scores, threshold)], ["emotion"], "neutral", BreakdownSettings(n_bootstrap=300)
    )
    sad = result["groups"]["emotion"]["sad"]["vs_reference"]
    assert sad["delta_bonafide_rejection_ci"][0] > 0  # the interval still shows the shift
    assert sad["p_bonafide_rejection"] == 0.5 and not sad["significant_bonafide_rejection"]


def null_dataset(rng, n_speakers=10, per_class=15, separation=1.28):
    """Two emotions with the same score distributions: per speaker an offset shared by both emotions (a speaker
    effect), ``per_class`` bona fide N(separation, 1) and spoofs N(-separation, 1) per speaker and emotion
    (about 10 % errors at the threshold 0)."""
    columns = {"utt_id": [], "speaker": [], "emotion": [], "key": []}
    scores = []
    for speaker in range(n_speakers):
        offset = rng.normal(0, 0.3)
        for emotion in ("neutral", "sad"):
            for key, mean in (("bonafide", separation), ("spoof", -separation)):
                columns["utt_id"] += [f"{speaker}_{emotion}_{key}_{i}" for i in range(per_class)]
                columns["speaker"] += [f"spk{speaker:02d}"] * per_class
                columns["emotion"] += [emotion] * per_class
                columns["key"] += [key] * per_class
                scores.append(rng.normal(mean + offset, 1.0, per_class))
    return TrialTable.from_columns(columns), np.concatenate(scores)


def test_p_values_hold_their_level_on_null_datasets():
    """The calibration of the test: on datasets without any effect, p < 0.05 in about 5 % of them (the old
    bootstrap p-value gave 8-11 % for the bona fide rejection). 100 datasets x 2 tests: a standard error of
    1.5 points around 5 %; the exact test is somewhat conservative when errors are few (ties)."""
    rng = np.random.default_rng(2024)
    settings = BreakdownSettings(
        n_bootstrap=10
    )  # the CIs are not under test here, the p-values need no resamples
    p_values = []
    for _ in range(100):
        table, scores = null_dataset(rng)
        result = breakdown(table, [ScoredRun(scores, 0.0)], ["emotion"], "neutral", settings)
        versus = result["groups"]["emotion"]["sad"]["vs_reference"]
        p_values.append([versus["p_eer"], versus["p_bonafide_rejection"]])
    p_values = np.array(p_values)
    false_positives = (p_values < 0.05).mean(axis=0)
    print("false-positive rates (EER, bona fide rejection):", false_positives)
    assert 0.02 <= (p_values < 0.05).mean() <= 0.08 and (false_positives <= 0.09).all()
    assert 0.35 < np.median(p_values) < 0.65  # p spreads over [0, 1] as a null p-value does
