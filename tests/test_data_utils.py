"""Audio loading, padding, protocols on the real ASVspoof 2019 LA files, DSES scanning."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import shared_path

import antispoof.data as du
from antispoof.metadata import read_metadata


def tone(seconds: float, sr: int, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


@pytest.mark.parametrize(
    "ext,fmt,sr,channels",
    [
        (".flac", "FLAC", 16000, 1),
        (".wav", "WAV", 8000, 2),
        (".ogg", "OGG", 44100, 1),
        (".wav", "WAV", 44100, 6),
    ],
)
def test_load_audio_formats_rates_channels(tmp_path, ext, fmt, sr, channels):
    path = tmp_path / f"a{ext}"
    sf.write(path, tone(1.0, sr, channels=channels), sr, format=fmt)
    x = du.load_audio(path)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - 16000) <= 2
    # the 440 Hz tone survives resampling and down-mixing: its spectral peak stays at 440 Hz
    spectrum = np.abs(np.fft.rfft(x[2000:14000]))
    peak_hz = np.argmax(spectrum) * 16000 / 12000
    assert abs(peak_hz - 440) < 3
    assert 0.25 < np.abs(x).max() < 0.35


def test_load_audio_errors_name_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(b"fLaC this is not audio" * 10)
    with pytest.raises(du.AudioError, match="corrupt.flac: cannot read audio"):
        du.load_audio(corrupt)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(du.AudioError, match="empty.wav: empty audio"):
        du.load_audio(empty)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.array([0.1, np.nan, 0.2] * 100, dtype=np.float32), 16000, subtype="FLOAT")
    with pytest.raises(du.AudioError, match="nan.wav: audio holds NaN"):
        du.load_audio(nan)
    with pytest.raises(du.AudioError, match="missing.flac"):
        du.load_audio(tmp_path / "missing.flac")


def test_crop_or_pad():
    x = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(du.crop_or_pad(x, 25), np.concatenate([x, x, x[:5]]))
    np.testing.assert_array_equal(du.crop_or_pad(x, 4), x[:4])  # eval: the first samples
    rng = np.random.default_rng(0)
    crops = {tuple(du.crop_or_pad(x, 4, rng)) for _ in range(50)}
    assert len(crops) == 7  # every start 0..6 is reachable, the last one included
    assert all(np.array_equal(np.array(c), x[int(c[0]) : int(c[0]) + 4]) for c in crops)


@pytest.mark.parametrize(
    "split,total,bonafide",
    [("train", 25380, 2580), ("dev", 24844, 2548), ("eval", 71237, 7355)],
)
def test_real_protocol_counts(tmp_path, split, total, bonafide):
    protocol = shared_path("asvspoof2019", du.ASVSPOOF_SPLITS[split][0])
    trials = du.asvspoof_trials(tmp_path, split, protocol_path=protocol)
    assert len(trials) == total
    assert sum(t.label == du.BONAFIDE for t in trials) == bonafide
    assert len({t.utt_id for t in trials}) == total
    assert trials[0].path == tmp_path / du.ASVSPOOF_SPLITS[split][1] / "flac" / f"{trials[0].utt_id}.flac"
    attacks = sorted({t.system for t in trials if t.key == "spoof"})
    if split == "eval":
        assert attacks == [f"A{i:02d}" for i in range(7, 20)]
    else:
        assert attacks == [f"A{i:02d}" for i in range(1, 7)]
    # the layout check reports every missing file at once, before any run starts
    with pytest.raises(du.ProtocolError, match=rf"{total} of {total} audio files are missing \(first: "):
        du.check_audio_exists(trials, split)


def test_missing_protocol_is_a_clear_error(tmp_path):
    with pytest.raises(du.ProtocolError, match="protocol file not found"):
        du.asvspoof_trials(tmp_path, "train")


def write_dses(root: Path) -> None:
    """A tiny DSES tree with the emotion-folder spellings met in the wild."""
    layout = {
        "ESD": {"0011": ["Neutral", "Happy", "Angry", "Sad", "Surprise"], "0012": ["neutral", "sad"]},
        "Zonos": {"0011": ["neutral", "happy", "angry", "sad", "surprised"]},
        "CosyVoice": {"0012": ["NEUTRAL", "Sadness"]},
    }
    for system, speakers in layout.items():
        for speaker, emotions in speakers.items():
            for emotion in emotions:
                folder = root / system / speaker / emotion
                if system == "ESD":
                    folder = folder / "train"  # ESD keeps train/test/evaluation below the emotion folder
                folder.mkdir(parents=True)
                for i in range(2):
                    sf.write(folder / f"{speaker}_{i}.wav", tone(0.2, 16000, 200 + 50 * i), 16000)
    (root / "Zonos" / "0011" / "bored").mkdir()
    (root / "stray.bin").write_bytes(b"x")
    (root / "README.md").write_text("ignored quietly")


def test_scan_dses(tmp_path):
    write_dses(tmp_path)
    trials, report = du.scan_dses(tmp_path)
    assert len(trials) == 2 * (7 + 5 + 2)
    by_system = {s: sum(t.system == s for t in trials) for s in ("-", "Zonos", "CosyVoice")}
    assert by_system == {"-": 14, "Zonos": 10, "CosyVoice": 4}
    assert {t.emotion for t in trials} == set(du.EMOTIONS)
    assert all((t.key == "bonafide") == (t.system == "-") for t in trials)
    cosy = [t for t in trials if t.system == "CosyVoice"]
    assert sorted(t.emotion for t in cosy) == ["neutral", "neutral", "sad", "sad"]
    assert len({t.utt_id for t in trials}) == len(trials)
    assert sorted(report.unexpected) == ["Zonos/0011/bored", "stray.bin"]
    assert "ignored 2 unexpected entries" in report.summary()

    protocol = tmp_path / "protocol.tsv"
    du.write_dses_protocol(trials, protocol, tmp_path)
    again = read_metadata(protocol)  # the scanned protocol is a metadata TSV for evaluation.py --metadata
    columns = ("utt_id", "speaker", "emotion", "system", "key")
    assert [tuple(again.column(c)[i] for c in columns) for i in range(len(again))] == [
        tuple(getattr(t, c) for c in columns) for t in trials
    ]
    assert [tmp_path / p for p in again.column("path")] == [t.path for t in trials]


def test_scan_dses_needs_bonafide(tmp_path):
    (tmp_path / "Zonos" / "0011" / "sad").mkdir(parents=True)
    sf.write(tmp_path / "Zonos" / "0011" / "sad" / "a.wav", tone(0.1, 16000), 16000)
    with pytest.raises(du.ProtocolError, match="no bona fide audio"):
        du.scan_dses(tmp_path)


def test_normalize_emotion():
    assert du.normalize_emotion("Surprise") == du.normalize_emotion("surprised") == "surprise"
    assert du.normalize_emotion("HAPPY") == "happy"
    assert du.normalize_emotion("bored") is None
