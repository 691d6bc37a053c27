"""Which trials form a group: the one rule every breakdown (DSES tables, ``--group_by``, the comparison report)
uses to turn a metadata column into sets of trials that each have bona fide and spoof trials."""

from __future__ import annotations

import numpy as np

from antispoof.metadata import TrialTable

CROSS_SEPARATOR = ":"  # "emotion:system" crosses two columns; its groups are named "angry:Zonos"


def column_masks(table: TrialTable, column: str) -> dict[str, np.ndarray]:
    """The trials of each value of ``column`` (values sorted), as boolean masks over the table's rows.

    A column that does not describe bona fide trials (they all carry one value that no spoof carries, e.g.
    system ``-``) gives for each spoof value all bona fide trials plus that value's spoofs: per TTS system
    means "all bona fide against that system", as per attack in ASVspoof. Any other column gives the trials
    with that value (per emotion: the bona fide and the spoofs of that emotion).
    """
    values, is_bonafide = table.column(column), table.is_bonafide
    bonafide_values, spoof_values = set(values[is_bonafide].tolist()), set(values[~is_bonafide].tolist())
    if len(bonafide_values) == 1 and not bonafide_values & spoof_values:
        return {v: is_bonafide | (values == v) for v in sorted(spoof_values)}
    return {v: values == v for v in sorted(bonafide_values | spoof_values)}


def group_masks(table: TrialTable, spec: str) -> dict[str, np.ndarray]:
    """Masks of a column (``emotion``) or of a cross of columns (``emotion:system``: every combination of
    their groups, named ``angry:Zonos``; empty combinations are left out)."""
    parts = spec.split(CROSS_SEPARATOR)
    masks = column_masks(table, parts[0])
    for part in parts[1:]:
        inner = column_masks(table, part)
        masks = {
            f"{name}{CROSS_SEPARATOR}{inner_name}": mask & inner_mask
            for name, mask in masks.items()
            for inner_name, inner_mask in inner.items()
            if (mask & inner_mask).any()
        }
    return masks


def class_counts(is_bonafide: np.ndarray, mask: np.ndarray) -> tuple[int, int]:
    """``(bona fide, spoof)`` trials in ``mask``."""
    n_bonafide = int(np.count_nonzero(mask & is_bonafide))
    return n_bonafide, int(np.count_nonzero(mask)) - n_bonafide
