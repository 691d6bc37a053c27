"""Lay out DSES-style system folders as an ASVspoof 2019 LA database (protocols + flac).

    from DSES.la_layout import export_la_layout
    export_la_layout(["demo/DSES/ESD"], ["demo/DSES/GL-a", "demo/DSES/GL-b"], "demo/LA")

reads each system folder's manifest.csv (as `DSES/synthesize.py` writes it) and writes

    <out>/ASVspoof2019_LA_{train,dev,eval}/flac/<UTT_ID>.flac
    <out>/ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.{train.trn,dev.trl,eval.trl}.txt
    <out>/la_index.csv   (UTT_ID -> split, key, system, system label, speaker, emotion, id, source file)

Protocol lines are `SPEAKER UTT_ID - SYSTEM KEY` with SYSTEM `-` for bona fide and A01, A02, ... for the
spoof systems in the order given (or `system_labels`), KEY bonafide|spoof. UTT_IDs are `LA_T_0000001`,
`LA_D_...`, `LA_E_...`, numbered in a fixed order, so re-running gives the same ids and only links the
files that are missing.

Splits: the sentence ids (default, `split_by="id"`) or the speakers (`split_by="speaker"`, disjoint
speakers as in ASVspoof) are shuffled with `seed` and cut by `split_fractions`. A sentence's bona fide
rendering and its spoofs always land in the same split, so a detector never meets in evaluation a copy
of a recording it was trained on.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from antispoof.fileio import atomic_open, link_or_copy, write_text_atomically
from antispoof.protocols import asvspoof_protocol_path
from DSES.synthesize import MANIFEST_NAME, read_manifest

SPLITS = ("train", "dev", "eval")
INDEX_FIELDS = ("utt_id", "split", "key", "system", "system_label", "speaker", "emotion", "id", "source")


def _system_rows(system_dir: Path) -> list[dict]:
    manifest = system_dir / MANIFEST_NAME
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: no manifest (make the system with DSES/synthesize.py first)")
    rows = read_manifest(manifest)
    if not rows:
        raise ValueError(f"{manifest}: the manifest lists no files")
    return rows


def assign_splits(keys: Sequence[str], fractions: Sequence[float], seed: int) -> dict[str, str]:
    """Shuffle the distinct keys with `seed` and cut them into train/dev/eval by `fractions`.

    Every split gets at least one key when there are three or more.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"split_fractions must be three non-negative numbers, got {fractions}")
    unique = sorted(set(keys))
    order = [unique[i] for i in np.random.default_rng(seed).permutation(len(unique))]
    total = sum(fractions)
    counts = [int(round(len(order) * f / total)) for f in fractions[:2]]
    if len(order) >= 3:
        counts = [max(1, c) for c in counts]
        counts[0] = min(counts[0], len(order) - 2)  # leave at least one key each for dev and eval
        counts[1] = min(counts[1], len(order) - counts[0] - 1)
    counts.append(len(order) - sum(counts))
    assignment, start = {}, 0
    for split, count in zip(SPLITS, counts):
        for key in order[start : start + count]:
            assignment[key] = split
        start += count
    return assignment


def export_la_layout(
    bonafide: str | Path | Sequence[str | Path],
    spoofs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    split_fractions: Sequence[float] = (0.6, 0.2, 0.2),
    split_by: str = "id",
    seed: int = 0,
    system_labels: dict[str, str] | None = None,
    link: bool = True,
) -> dict[str, Path]:
    """Write an ASVspoof 2019 LA-style database from DSES system folders (see the module docstring).

    Args:
        bonafide: the bona fide system folder(s), e.g. `<root>/ESD`.
        spoofs: the spoof system folders, e.g. `<root>/GL-nfft512-hop128-mels80-it32`.
        out_dir: the LA root to write.
        split_fractions: train, dev, eval shares of the sentence ids (or speakers).
        split_by: "id" (sentences) or "speaker".
        seed: shuffles the ids/speakers before the cut.
        system_labels: protocol label per spoof system folder name; default A01, A02, ... in order.
        link: hard-link the flac files when possible (else copy).

    Returns the paths written: {"train": protocol, "dev": ..., "eval": ..., "index": la_index.csv}.
    """
    bonafide_dirs = [Path(bonafide)] if isinstance(bonafide, (str, Path)) else [Path(p) for p in bonafide]
    spoof_dirs = [Path(p) for p in spoofs]
    if split_by not in ("id", "speaker"):
        raise ValueError(f"split_by must be 'id' or 'speaker', got {split_by!r}")
    labels = dict(system_labels or {})
    for number, system_dir in enumerate(spoof_dirs, start=1):
        labels.setdefault(system_dir.name, f"A{number:02d}")

    entries = []  # (system_dir, key, label, row)
    for system_dir in bonafide_dirs:
        entries += [(system_dir, "bonafide", "-", row) for row in _system_rows(system_dir)]
    for system_dir in spoof_dirs:
        entries += [(system_dir, "spoof", labels[system_dir.name], row) for row in _system_rows(system_dir)]
    split_of = assign_splits([row[split_by] for _, _, _, row in entries], split_fractions, seed)

    out = Path(out_dir)
    index_rows, protocol_lines = [], {split: [] for split in SPLITS}
    counters = dict.fromkeys(SPLITS, 0)
    entries.sort(key=lambda e: (SPLITS.index(split_of[e[3][split_by]]), e[0].name, e[3]["path"]))
    for system_dir, key, label, row in entries:
        split = split_of[row[split_by]]
        counters[split] += 1
        utt_id = f"LA_{split[0].upper()}_{counters[split]:07d}"
        source = system_dir / row["path"]
        link_or_copy(source, out / f"ASVspoof2019_LA_{split}" / "flac" / f"{utt_id}.flac", link=link)
        protocol_lines[split].append(f"{row['speaker']} {utt_id} - {label} {key}\n")
        index_rows.append(
            {
                "utt_id": utt_id,
                "split": split,
                "key": key,
                "system": system_dir.name,
                "system_label": label,
                "speaker": row["speaker"],
                "emotion": row["emotion"],
                "id": row["id"],
                "source": str(source),
            }
        )

    _remove_stale_flacs(out, {row["utt_id"] for row in index_rows})
    return _write_protocols_and_index(out, protocol_lines, index_rows)


def _remove_stale_flacs(out: Path, kept: set[str]) -> None:
    """Delete the flac files of an earlier, larger export that the new protocols no longer list."""
    for split in SPLITS:
        for stale in (out / f"ASVspoof2019_LA_{split}" / "flac").glob("LA_*.flac"):
            if stale.stem not in kept:
                stale.unlink()


def _write_protocols_and_index(
    out: Path, protocol_lines: dict[str, list[str]], index_rows: list[dict]
) -> dict[str, Path]:
    written = {}
    for split in SPLITS:
        path = asvspoof_protocol_path(out, split)
        write_text_atomically(path, "".join(protocol_lines[split]))
        written[split] = path
    index_path = out / "la_index.csv"
    with atomic_open(index_path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=INDEX_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(index_rows)
    written["index"] = index_path
    return written
