"""Synthetic emotional-speech scores with planted effects, and experiment folders holding them (no training)."""

import json
from pathlib import Path

import numpy as np

from antispoof.metadata import TrialTable
from antispoof.protocols import DSES_PROTOCOL_FIELDS
from antispoof.scorefiles import ProtocolEntry, write_score_file

EMOTIONS = ("neutral", "happy", "angry", "sad", "surprise")
SYSTEMS = ("CosyVoice", "Zonos")
# planted effects: "sad" moves bona fide and spoof scores down together (the same separation, so the same EER,
# but many real utterances fall below a fixed threshold); "angry" moves the spoofs up (a worse EER)
SAD_SHIFT, ANGRY_SPOOF_SHIFT = -2.0, 2.5
# the JSON contract of issue 12: fields of every group, and of a group's comparison with the reference group
GROUP_FIELDS = {
    "n_bonafide",
    "n_spoof",
    "n_speakers",
    "eer_percent",
    "eer_ci",
    "bonafide_rejection_percent",
    "bonafide_rejection_ci",
    "spoof_acceptance_percent",
    "spoof_acceptance_ci",
}
VERSUS_FIELDS = {
    "delta_eer_percent",
    "delta_eer_ci",
    "p_eer",
    "delta_bonafide_rejection_percent",
    "delta_bonafide_rejection_ci",
    "p_bonafide_rejection",
}


def planted_trials(
    n_speakers: int = 10,
    per_cell: int = 30,
    seed: int = 0,
    sad_shift: float = SAD_SHIFT,
    angry_spoof_shift: float = ANGRY_SPOOF_SHIFT,
    separation: float = 2.0,
    systems=SYSTEMS,
):
    """Metadata columns and scores: per speaker x emotion, ``per_cell`` bona fide and ``per_cell`` spoofs per
    TTS system. Bona fide ~ N(separation + u, 1), spoof ~ N(-separation + u, 1), u a speaker effect."""
    rng = np.random.default_rng(seed)
    columns = {name: [] for name in DSES_PROTOCOL_FIELDS}
    scores = []
    for s in range(n_speakers):
        speaker = f"00{s + 11}"
        offset = rng.normal(0, 0.3)
        for emotion in EMOTIONS:
            shift = sad_shift if emotion == "sad" else 0.0
            cells = [("ESD", "-", "bonafide", separation)] + [(t, t, "spoof", -separation) for t in systems]
            for folder, system, key, mean in cells:
                spoof_shift = angry_spoof_shift if emotion == "angry" and key == "spoof" else 0.0
                for i in range(per_cell):
                    utt = f"{folder}/{speaker}/{emotion}/{speaker}_{emotion}_{i:03d}"
                    for name, value in zip(
                        DSES_PROTOCOL_FIELDS, (utt, speaker, emotion, system, key, f"{utt}.wav")
                    ):
                        columns[name].append(value)
                    scores.append(rng.normal(mean + offset + shift + spoof_shift, 1.0))
    return columns, np.array(scores)


def planted_table(**options) -> tuple[TrialTable, np.ndarray]:
    columns, scores = planted_trials(**options)
    return TrialTable.from_columns(columns), scores


def write_metadata(path: Path, columns) -> Path:
    names = list(columns)
    rows = ["\t".join(names)] + ["\t".join(values) for values in zip(*(columns[n] for n in names))]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")
    return path


def write_scores(path: Path, columns, scores) -> Path:
    trials = [
        ProtocolEntry(spk, utt, system, key)
        for utt, spk, system, key in zip(
            columns["utt_id"], columns["speaker"], columns["system"], columns["key"]
        )
    ]
    return write_score_file(path, trials, scores)


def write_dev_scores(path: Path, seed: int = 0, n: int = 200, separation: float = 2.0, scale: float = 1.0):
    """LA19-dev-like scores: ``n`` bona fide N(separation, 1) and ``n`` spoofs N(-separation, 1), times
    ``scale`` (an uncalibrated detector)."""
    rng = np.random.default_rng(1000 + seed)
    trials = [ProtocolEntry("LA_0070", f"LA_D_{i:07d}", "-", "bonafide") for i in range(n)]
    trials += [ProtocolEntry("LA_0070", f"LA_D_{n + i:07d}", f"A0{1 + i % 6}", "spoof") for i in range(n)]
    scores = np.concatenate((rng.normal(separation, 1, n), rng.normal(-separation, 1, n))) * scale
    return write_score_file(path, trials, scores)


def write_experiment(
    folder: Path,
    architecture: str,
    seed: int = 0,
    with_dev: bool = True,
    calibration: dict | None = None,
    **planted,
) -> Path:
    """An experiment folder as main.py writes it: config.conf, dev_scores.txt, dses/{dses_scores.txt,
    dses_protocol.tsv} and optionally calibration.json."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.conf").write_text(json.dumps({"model_config": {"architecture": architecture}}))
    columns, scores = planted_trials(seed=seed, **planted)
    write_metadata(folder / "dses" / "dses_protocol.tsv", columns)
    write_scores(folder / "dses" / "dses_scores.txt", columns, scores)
    if with_dev:
        write_dev_scores(folder / "dev_scores.txt", seed)
    if calibration is not None:
        (folder / "calibration.json").write_text(json.dumps(calibration))
    return folder
