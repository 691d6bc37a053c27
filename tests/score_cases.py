"""Small score files, protocols and reference paths shared by the evaluation tests."""

from pathlib import Path

FIXTURE_SCORES = ("fixtures", "cm_scores_public_seed7.txt")
FIXTURE_REFERENCE = ("fixtures", "tdcf_reference_public.json")
ASV_EVAL = ("asvspoof2019", "ASVspoof2019.LA.asv.eval.gi.trl.scores.txt")
PROTOCOL_EVAL = ("asvspoof2019", "ASVspoof2019.LA.cm.eval.trl.txt")
EVAL_ATTACKS = [f"A{i:02d}" for i in range(7, 20)]

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
# a score file read from disk refuses a repeated id itself, naming the file, the line and the id
DUPLICATE_IN_FILE = r"scores\.txt:6: trial id LA_E_2 appears more than once \(first on line 2\)"


def write_protocol(folder: Path) -> Path:
    path = folder / "protocol.txt"
    path.write_text("\n".join(PROTOCOL_LINES) + "\n")
    return path


def write_rows(path: Path, rows) -> Path:
    path.write_text("".join(f"{u} {s} {k} {v}\n" for u, s, k, v in rows))
    return path


def assert_rel(actual: float, expected: float, rel: float = 1e-6) -> None:
    assert abs(actual - expected) <= rel * abs(expected), f"{actual} != {expected} (rel {rel})"
