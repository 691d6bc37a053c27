"""antispoof.metadata (the trial metadata TSV) and antispoof.grouping (which trials form a group)."""

import numpy as np
import pytest
from emotion_cases import planted_trials, write_metadata, write_scores

from antispoof.grouping import column_masks, group_masks
from antispoof.metadata import TrialTable, read_metadata
from antispoof.protocols import Trial, write_dses_protocol
from antispoof.scorefiles import EvaluationInputError, ScoreProtocolMismatch, read_score_file


def test_the_dses_protocol_main_writes_is_metadata(tmp_path):
    root = tmp_path / "DSES"
    trials = [
        Trial("ESD/0011/sad/a", "0011", "-", "bonafide", root / "ESD/0011/sad/a.wav", emotion="sad"),
        Trial("Zonos/0011/sad/a", "0011", "Zonos", "spoof", root / "Zonos/0011/sad/a.wav", emotion="sad"),
    ]
    path = tmp_path / "dses" / "dses_protocol.tsv"
    write_dses_protocol(trials, path, root)
    table = read_metadata(path)
    assert table.columns["utt_id"].tolist() == ["ESD/0011/sad/a", "Zonos/0011/sad/a"]
    assert table.column("emotion").tolist() == ["sad", "sad"] and table.is_bonafide.tolist() == [True, False]
    assert table.column("path").tolist() == ["ESD/0011/sad/a.wav", "Zonos/0011/sad/a.wav"]
    from_trials = TrialTable.from_trials(trials)
    for name in ("utt_id", "speaker", "emotion", "system", "key"):
        np.testing.assert_array_equal(from_trials.columns[name], table.columns[name])


def test_any_attribute_columns_in_any_order(tmp_path):
    path = tmp_path / "m.tsv"
    path.write_text("gender\tkey\tutt_id\tspeaker\nf\tbonafide\tu1\ts1\n\nm\tspoof\tu2\ts2\n")
    table = read_metadata(path)
    assert len(table) == 2 and table.column("gender").tolist() == ["f", "m"]  # the blank line is skipped
    with pytest.raises(EvaluationInputError, match=r"m\.tsv: no column 'emotion' \(columns: gender, key"):
        table.column("emotion")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("utt_id\tspeaker\temotion\nu1\ts1\tsad\n", r"m\.tsv:1: header lacks column\(s\) key"),
        ("utt_id\tkey\tspeaker\nu1\tbonafide\n", r"m\.tsv:2: expected 3 tab-separated fields, got 2"),
        ("utt_id key speaker\nu1 bonafide s1\n", r"m\.tsv:1: header lacks column\(s\) utt_id, key, speaker"),
        ("utt_id\tkey\tspeaker\nu1\tgenuine\ts1\n", r"m\.tsv:2: key 'genuine' is not bonafide\|spoof"),
        ("utt_id\tkey\tspeaker\nu1\tspoof\t\n", r"m\.tsv:2: empty speaker"),
        ("utt_id\tkey\tspeaker\nu1\tspoof\ts\n\nu1\tbonafide\ts\n", r"m\.tsv:4: utt_id u1 .*first on line 2"),
        ("utt_id\tkey\tspeaker\n", r"m\.tsv: metadata has no trials"),
        ("", r"m\.tsv: metadata is empty"),
    ],
)
def test_metadata_errors_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "m.tsv"
    path.write_text(content)
    with pytest.raises(EvaluationInputError, match=message) as info:
        read_metadata(path)
    assert "\n" not in str(info.value)


def test_scores_are_aligned_to_the_metadata_and_mismatches_refused(tmp_path):
    columns, scores = planted_trials(n_speakers=2, per_cell=2)
    table = read_metadata(write_metadata(tmp_path / "m.tsv", columns))
    order = np.random.default_rng(0).permutation(len(table))
    shuffled = {name: [values[i] for i in order] for name, values in columns.items()}
    path = write_scores(tmp_path / "s.txt", shuffled, scores[order])
    np.testing.assert_array_equal(table.scores_of(read_score_file(path), path), scores)
    bad = dict(columns, system=["Zonos" if s == "CosyVoice" else s for s in columns["system"]])
    other = write_scores(tmp_path / "other.txt", bad, scores)
    with pytest.raises(
        ScoreProtocolMismatch, match=r"other\.txt: scores do not match the metadata .*different system"
    ):
        table.scores_of(read_score_file(other), other)
    short = write_scores(tmp_path / "short.txt", {n: v[1:] for n, v in columns.items()}, scores[1:])
    with pytest.raises(ScoreProtocolMismatch, match=r"1 trial\(s\) missing from the scores"):
        table.scores_of(read_score_file(short), short)


def small_table():
    return TrialTable.from_columns(
        {
            "utt_id": [f"u{i}" for i in range(6)],
            "speaker": ["a", "a", "a", "b", "b", "b"],
            "key": ["bonafide", "spoof", "spoof", "bonafide", "spoof", "spoof"],
            "emotion": ["sad", "sad", "sad", "happy", "happy", "happy"],
            "system": ["-", "Zonos", "CosyVoice", "-", "Zonos", "Zonos"],
        }
    )


def test_column_masks_describe_bonafide_or_pool_it():
    table = small_table()
    emotions = column_masks(table, "emotion")
    assert {k: v.tolist() for k, v in emotions.items()} == {
        "happy": [False, False, False, True, True, True],
        "sad": [True, True, True, False, False, False],
    }
    # bona fide trials carry system "-": each system is all bona fide against its own spoofs
    systems = column_masks(table, "system")
    assert {k: np.flatnonzero(v).tolist() for k, v in systems.items()} == {
        "CosyVoice": [0, 2, 3],
        "Zonos": [0, 1, 3, 4, 5],
    }
    cross = group_masks(table, "emotion:system")
    assert {k: np.flatnonzero(v).tolist() for k, v in cross.items()} == {
        "happy:CosyVoice": [3],  # no spoofs: kept here, reported as skipped by the breakdown
        "happy:Zonos": [3, 4, 5],
        "sad:CosyVoice": [0, 2],
        "sad:Zonos": [0, 1],
    }


def test_table_refuses_bad_columns():
    with pytest.raises(EvaluationInputError, match="no column speaker"):
        TrialTable.from_columns({"utt_id": ["a"], "key": ["spoof"]})
    with pytest.raises(EvaluationInputError, match="differ in length"):
        TrialTable.from_columns({"utt_id": ["a"], "key": ["spoof"], "speaker": ["s", "t"]})
    with pytest.raises(EvaluationInputError, match=r"trial 2: utt_id a appears more than once"):
        TrialTable.from_columns({"utt_id": ["a", "a"], "key": ["spoof"] * 2, "speaker": ["s"] * 2})
