"""antispoof.scorefiles: score files, ASVspoof protocols, and checking one against the other."""

import time

import numpy as np
import pytest
from conftest import shared_path
from score_cases import (
    DUPLICATE_IN_FILE,
    EVAL_ATTACKS,
    GOOD_SCORES,
    MISMATCHES,
    write_protocol,
    write_rows,
)

from antispoof import scorefiles as sf
from antispoof.scorefiles import ProtocolEntry


@pytest.fixture
def small_protocol(tmp_path):
    return write_protocol(tmp_path)


def entries(ids, systems, keys):
    return [ProtocolEntry("LA_0001", u, s, k) for u, s, k in zip(ids, systems, keys)]


def test_score_file_round_trip_is_exact_and_atomic(tmp_path):
    scores = np.random.default_rng(0).normal(size=5).astype(np.float32)
    ids = [f"LA_E_{i}" for i in range(5)]
    trials = entries(ids, ["-", "A07", "-", "A08", "A09"], ["bonafide", "spoof"] * 2 + ["spoof"])
    path = sf.write_score_file(tmp_path / "scores.txt", trials, scores)
    back = sf.read_score_file(path)
    assert back.utt_ids == tuple(ids) and back.keys[:2] == ("bonafide", "spoof")
    np.testing.assert_array_equal(back.scores, scores.astype(np.float64))
    assert path.read_text().splitlines()[1].startswith("LA_E_1 A07 spoof ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.txt"]  # no temp file left behind


def test_write_score_file_takes_trial_objects(tmp_path):
    class Trial:  # antispoof.protocols.Trial carries more attributes; only utt_id, system and key are read
        def __init__(self, utt_id, system, key):
            self.utt_id, self.system, self.key, self.speaker = utt_id, system, key, "spk"

    trials = [Trial(u, s, k) for u, s, k, _ in GOOD_SCORES]
    path = sf.write_score_file(tmp_path / "rows.txt", trials, [v for *_, v in GOOD_SCORES])
    assert path.read_text() == "".join(f"{u} {s} {k} {float(v)!r}\n" for u, s, k, v in GOOD_SCORES)


def test_write_score_file_refuses_bad_input(tmp_path):
    target = tmp_path / "scores.txt"
    with pytest.raises(sf.EvaluationInputError, match="non-finite"):
        sf.write_score_file(target, entries(["a", "b"], ["-", "A07"], ["bonafide", "spoof"]), [0.0, np.nan])
    with pytest.raises(sf.EvaluationInputError, match="whitespace"):
        sf.write_score_file(target, entries(["a b", "c"], ["-", "A07"], ["bonafide", "spoof"]), [0.0, 1.0])
    with pytest.raises(sf.EvaluationInputError, match="not bonafide"):
        sf.write_score_file(target, entries(["a", "c"], ["-", "A07"], ["bonafide", "fake"]), [0.0, 1.0])
    with pytest.raises(sf.DuplicateTrialId, match=r"trial 2: trial id a appears more than once"):
        sf.write_score_file(target, entries(["a", "a"], ["-", "A07"], ["bonafide", "spoof"]), [0.0, 1.0])
    with pytest.raises(sf.EvaluationInputError, match="differ in length"):
        sf.write_score_file(target, entries(["a", "c"], ["-", "A07"], ["bonafide", "spoof"]), [0.0])
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
    with pytest.raises(sf.EvaluationInputError, match=message) as info:
        sf.read_score_file(path)
    assert "\n" not in str(info.value)


def test_read_score_file_refuses_repeated_ids_with_file_line_and_id(tmp_path):
    path = write_rows(tmp_path / "scores.txt", MISMATCHES["duplicate"][0])
    with pytest.raises(sf.DuplicateTrialId, match=DUPLICATE_IN_FILE) as info:
        sf.read_score_file(path)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, sf.ScoreProtocolMismatch)  # the CLI's exit code 2
    # blank lines count as lines; the same id as another trial's system or key is no repeat
    path.write_text("LA_E_1 - bonafide 1.0\n\nA07 A07 spoof 2.0\nLA_E_1 A07 spoof 0.5\n")
    with pytest.raises(sf.DuplicateTrialId, match=r"scores\.txt:4: trial id LA_E_1 .* \(first on line 1\)"):
        sf.read_score_file(path)
    with pytest.raises(sf.DuplicateTrialId, match=r"scores: trial 3: trial id x appears more than once"):
        sf.CMScores.from_columns(["x", "y", "x"], ["-"] * 3, ["bonafide"] * 3, [1.0, 2.0, 3.0])


def test_read_protocol_errors(tmp_path):
    path = tmp_path / "protocol.txt"
    path.write_text("LA_0001 LA_E_1 - - bonafide\nLA_0001 LA_E_2 - A07\n")
    with pytest.raises(sf.EvaluationInputError, match=r"protocol\.txt:2: expected 5 fields"):
        sf.read_asvspoof_protocol(path)
    path.write_text("LA_0001 LA_E_1 - - bonafide\nLA_0001 LA_E_1 - A07 spoof\n")
    with pytest.raises(sf.EvaluationInputError, match="LA_E_1 appears more than once"):
        sf.read_asvspoof_protocol(path)
    with pytest.raises(sf.EvaluationInputError, match="cannot read protocol"):
        sf.read_asvspoof_protocol(tmp_path / "absent.txt")


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
        protocol = sf.read_asvspoof_protocol(path)
        seconds.append(time.process_time() - start)
    assert len(protocol) == n_trials
    assert sum(key == "bonafide" for _, _, _, key in protocol) == n_bonafide
    assert sorted({system for _, _, system, key in protocol if key == "spoof"}) == attacks
    assert {system for _, _, system, key in protocol if key == "bonafide"} == {"-"}
    speaker, utt_id, _, _ = protocol[0]
    assert speaker.startswith("LA_") and utt_id.startswith("LA_")
    assert (protocol[0].speaker, protocol[0].utt_id) == (speaker, utt_id)  # named fields too
    assert min(seconds) < 0.2, f"parsing {n_trials} lines took {min(seconds):.3f} s"


def test_matching_scores_pass(tmp_path, small_protocol):
    scores = sf.read_score_file(write_rows(tmp_path / "s.txt", GOOD_SCORES))
    sf.check_scores_against_protocol(scores, sf.read_asvspoof_protocol(small_protocol), "s.txt")
    shuffled = sf.read_score_file(write_rows(tmp_path / "r.txt", GOOD_SCORES[::-1]))  # order is free
    sf.check_scores_against_protocol(shuffled, sf.read_asvspoof_protocol(small_protocol), "r.txt")


def scores_in_memory(rows) -> sf.CMScores:
    """A score set built directly, bypassing the readers' own refusal of repeated ids."""
    utt_ids, systems, keys, values = zip(*rows)
    return sf.CMScores(utt_ids, systems, keys, np.asarray(values, dtype=np.float64))


@pytest.mark.parametrize("case", sorted(MISMATCHES))
def test_mismatch_refused_by_function(tmp_path, small_protocol, case):
    rows, message = MISMATCHES[case]
    path = write_rows(tmp_path / "scores.txt", rows)
    scores = scores_in_memory(rows) if case == "duplicate" else sf.read_score_file(path)
    with pytest.raises(sf.ScoreProtocolMismatch, match=message) as info:
        sf.check_scores_against_protocol(scores, sf.read_asvspoof_protocol(small_protocol), path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_mismatch_accepts_trial_objects(small_protocol):
    class Trial:  # data_utils' trials carry attributes, not positions
        def __init__(self, utt_id, system, key):
            self.utt_id, self.system, self.key = utt_id, system, key

    trials = [Trial(u, s, k) for _, u, s, k in sf.read_asvspoof_protocol(small_protocol)]
    scores = sf.CMScores.from_columns(*zip(*GOOD_SCORES))
    sf.check_scores_against_protocol(scores, trials)
    with pytest.raises(sf.ScoreProtocolMismatch, match="missing"):
        sf.check_scores_against_protocol(scores, trials + [Trial("LA_E_77", "-", "bonafide")])
