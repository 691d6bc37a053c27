"""DSES generation: text parsing, the pipeline (layout, manifest, resume, failures), the five back-ends.

eSpeak NG and the vocoder run for real; Zonos, CosyVoice and EmoSpeech (GPU, weights) are replaced by fake
packages in sys.modules that record the calls made and return audio of known shape and rate.
"""

from __future__ import annotations

import csv
import dataclasses
import inspect
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from DSES.backends import get_backend
from DSES.backends.base import Backend
from DSES.backends.espeak import SPEAKER_VOICES, speaker_voice
from DSES.la_layout import export_la_layout
from DSES.synthesize import (
    MANIFEST_FIELDS,
    TextLine,
    load_audio_16k,
    main,
    parse_text_lines,
    read_manifest,
    read_texts,
    synthesize_corpus,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
EMOTIONS = ("neutral", "happy", "angry", "sad", "surprise")
SENTENCES = ["The quick brown fox jumps over the lazy dog.", "Please call Stella and ask her to come."]


# ------------------------------------------------------------------------------------------- helpers
def median_f0(audio: np.ndarray, rate: int, fmin: float = 60.0, fmax: float = 450.0) -> np.ndarray:
    """F0 (Hz) of the voiced, loud frames by YIN's cumulative mean normalised difference (threshold 0.15)."""
    frame, hop = int(0.04 * rate), int(0.01 * rate)
    tau_min, tau_max = int(rate / fmax), int(rate / fmin)
    windows = np.lib.stride_tricks.sliding_window_view(audio.astype(np.float64), frame + tau_max)[::hop]
    head = windows[:, :frame]
    loud = np.sqrt((head**2).mean(axis=1)) > 0.1 * np.sqrt((head**2).mean(axis=1)).max()
    windows, head = windows[loud], head[loud]
    size = 1 << int(np.ceil(np.log2(2 * windows.shape[1])))
    cross = np.fft.irfft(np.conj(np.fft.rfft(head, size)) * np.fft.rfft(windows, size), size)[
        :, : tau_max + 1
    ]
    energy = np.concatenate([np.zeros((len(windows), 1)), np.cumsum(windows**2, axis=1)], axis=1)
    taus = np.arange(tau_max + 1)
    shifted_energy = energy[:, taus + frame] - energy[:, taus]
    difference = np.maximum(shifted_energy[:, :1] + shifted_energy - 2 * cross, 0.0)
    normalised = np.ones_like(difference)
    normalised[:, 1:] = difference[:, 1:] * taus[1:] / np.maximum(np.cumsum(difference[:, 1:], axis=1), 1e-12)
    f0 = []
    for row in normalised:
        below = np.nonzero(row[tau_min:] < 0.15)[0]
        if below.size:
            tau = below[0] + tau_min
            while tau + 1 <= tau_max and row[tau + 1] < row[tau]:
                tau += 1
            f0.append(rate / tau)
    return np.array(f0)


def dominant_frequency(audio: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    return float(np.fft.rfftfreq(audio.size, 1 / rate)[np.argmax(spectrum)])


def sine(frequency: float, seconds: float, rate: int) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * frequency * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def manifest_matches_files(system_dir: Path) -> list[dict]:
    """Assert the manifest lists exactly the FLAC files present, with their true durations; return rows."""
    rows = read_manifest(system_dir / "manifest.csv")
    on_disk = sorted(p.relative_to(system_dir).as_posix() for p in system_dir.glob("*/*/*.flac"))
    assert sorted(row["path"] for row in rows) == on_disk
    for row in rows:
        info = sf.info(str(system_dir / row["path"]))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert float(row["duration"]) == pytest.approx(info.duration, abs=1e-3)
        speaker, emotion, name = row["path"].split("/")
        assert (row["speaker"], row["emotion"], row["id"] + ".flac") == (speaker, emotion, name)
    assert not list(system_dir.glob("*/*/*.partial"))
    return rows


def install_fake_modules(monkeypatch, modules: dict[str, dict]) -> None:
    """Put fake modules (name -> attributes) in sys.modules for the duration of a test."""
    for name, attributes in modules.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        monkeypatch.setitem(sys.modules, name, module)


@pytest.fixture(scope="module")
def espeak():
    return get_backend("espeak")


@pytest.fixture(scope="module")
def bonafide_corpus(tmp_path_factory, espeak):
    """A small eSpeak corpus in the DSES layout: 2 speakers x 5 emotions x 2 sentences."""
    root = tmp_path_factory.mktemp("dses")
    report = synthesize_corpus(espeak, SENTENCES, root, speakers=["s1", "0011"], system="ESD", progress=False)
    assert (report.made, report.failed) == (20, [])
    return root / "ESD"


@pytest.fixture
def reference_speakers(tmp_path, espeak):
    """Reference speech for two speakers in ESD's own layout (`0011/Neutral/0011_000001.wav`, 22.05 kHz)."""
    root = tmp_path / "ESD"
    for speaker in ("0011", "0012"):
        for number, text in enumerate(SENTENCES, start=1):
            path = root / speaker / "Neutral" / f"{speaker}_{number:06d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), espeak.synthesize(text, speaker, "neutral"), espeak.sample_rate)
    return root


# ------------------------------------------------------------------------------------------- texts
def test_text_file_formats_esd_tabbed_and_plain(tmp_path):
    esd = tmp_path / "0011.txt"
    esd.write_text(
        "0011_000001\tThe nine the eggs, I keep.\tNeutral\n0011_000351\tThe nine the eggs, I keep.\tAngry\n"
    )
    assert read_texts(esd) == [
        TextLine("0011_000001", "The nine the eggs, I keep.", "neutral"),
        TextLine("0011_000351", "The nine the eggs, I keep.", "angry"),
    ]
    plain = parse_text_lines(["# a comment", "", "Hello there.", "a1\tGood morning.", "b2\tWow!\tSurprised"])
    assert plain == [
        TextLine("00001", "Hello there."),  # numbered among the sentences
        TextLine("a1", "Good morning."),
        TextLine("b2", "Wow!", "surprise"),
    ]
    with pytest.raises(ValueError, match=r"x\.txt:2: id 'a' already used on line 1"):
        parse_text_lines(["a\tOne.", "a\tTwo."], "x.txt")
    with pytest.raises(ValueError, match=r"x\.txt:1: unknown emotion 'Bored'"):
        parse_text_lines(["a\tOne.\tBored"], "x.txt")
    with pytest.raises(ValueError, match=r"x\.txt:1: utterance id 'a/b'"):
        parse_text_lines(["a/b\tOne."], "x.txt")


def test_esd_transcript_renders_each_sentence_once_per_emotion(tmp_path, espeak):
    texts = tmp_path / "0011.txt"
    texts.write_text(
        "0011_000001\tGood morning.\tNeutral\n"
        "0011_000351\tGood morning.\tAngry\n"
        "0011_000002\tHi there.\tNeutral\n"
    )
    report = synthesize_corpus(espeak, texts, tmp_path / "out", ["0011"], ["neutral", "sad"], progress=False)
    assert report.made == 4
    rows = manifest_matches_files(tmp_path / "out" / "eSpeak")
    assert sorted(row["path"] for row in rows) == [
        "0011/neutral/0011_000001.flac",
        "0011/neutral/0011_000002.flac",
        "0011/sad/0011_000001.flac",
        "0011/sad/0011_000002.flac",
    ]
    # per-line emotion: each line only in its own emotion
    per_line = synthesize_corpus(
        espeak, texts, tmp_path / "own", ["0011"], system="X", per_line_emotion=True, progress=False
    )
    assert per_line.made == 3
    assert (tmp_path / "own" / "X" / "0011" / "angry" / "0011_000351.flac").is_file()


# ------------------------------------------------------------------------------------------- espeak
def test_espeak_corpus_layout_manifest_and_distinct_speakers(bonafide_corpus):
    rows = manifest_matches_files(bonafide_corpus)
    assert len(rows) == 20
    assert {(r["speaker"], r["emotion"]) for r in rows} == {(s, e) for s in ("s1", "0011") for e in EMOTIONS}
    for row in rows:
        assert row["system"] == "ESD" and row["backend"] == "espeak"
        assert row["text"] == SENTENCES[int(row["id"]) - 1]
        settings = json.loads(row["settings"])
        assert settings["voice"] == speaker_voice(row["speaker"])[0]
        assert int(row["seed"]) >= 0
    assert len({speaker_voice(f"00{n}")[0] for n in range(11, 21)}) == len(SPEAKER_VOICES)
    male, _ = sf.read(str(bonafide_corpus / "s1" / "neutral" / "00001.flac"))
    female, _ = sf.read(str(bonafide_corpus / "0011" / "neutral" / "00001.flac"))
    assert np.median(median_f0(female, 16000)) > 1.4 * np.median(median_f0(male, 16000))


def test_espeak_emotions_differ_in_the_documented_direction(espeak):
    measures = {}
    for emotion in EMOTIONS:
        audio = [espeak.synthesize(text, "0012", emotion) for text in SENTENCES]
        f0 = [median_f0(a, espeak.sample_rate) for a in audio]
        semitones = [12 * np.log2(f) for f in f0]
        measures[emotion] = {
            "seconds": sum(a.size for a in audio) / espeak.sample_rate,
            "f0": np.mean([np.median(f) for f in f0]),
            "range": np.mean([np.percentile(s, 90) - np.percentile(s, 10) for s in semitones]),
            "rms": np.mean([np.sqrt(np.mean(a**2)) for a in audio]),
        }
    neutral, sad = measures["neutral"], measures["sad"]
    # sad: slower, lower, narrower, quieter (Murray & Arnott 1993)
    assert sad["seconds"] > 1.15 * neutral["seconds"]
    assert sad["f0"] < 0.9 * neutral["f0"]
    assert sad["range"] < neutral["range"]
    assert sad["rms"] < 0.85 * neutral["rms"]
    # happy, angry, surprise: faster and higher; surprise highest
    for emotion in ("happy", "angry", "surprise"):
        assert measures[emotion]["seconds"] < neutral["seconds"]
        assert measures[emotion]["f0"] > 1.1 * neutral["f0"]
    assert measures["surprise"]["f0"] == max(m["f0"] for m in measures.values())
    # angry: the loudest
    assert measures["angry"]["rms"] > 1.25 * neutral["rms"]
    assert measures["angry"]["rms"] == max(m["rms"] for m in measures.values())


# ------------------------------------------------------------------------------------------- vocoder
def test_vocoder_two_settings_two_systems_same_ids_and_duration(bonafide_corpus, tmp_path):
    root = tmp_path / "dses"
    fine = synthesize_corpus(
        "vocoder", None, root, ["s1"], ["neutral", "angry"], reference_audio=bonafide_corpus, progress=False
    )
    coarse_backend = get_backend("vocoder", n_fft=1024, hop_length=256, n_mels=40, n_iter=4)
    coarse = synthesize_corpus(
        coarse_backend,
        None,
        root,
        ["s1"],
        ["neutral", "angry"],
        reference_audio=bonafide_corpus,
        progress=False,
    )
    assert fine.system_dir.name == "GL-nfft512-hop128-mels80-it32"
    assert coarse.system_dir.name == "GL-nfft1024-hop256-mels40-it4"
    assert fine.made == coarse.made == 4 and not fine.failed and not coarse.failed
    bonafide_rows = {r["path"]: r for r in read_manifest(bonafide_corpus / "manifest.csv")}
    errors = {}
    for report in (fine, coarse):
        rows = manifest_matches_files(report.system_dir)
        errors[report.system_dir.name] = []
        for row in rows:
            original, _ = sf.read(str(bonafide_corpus / row["path"]), dtype="float32")
            copy, _ = sf.read(str(report.system_dir / row["path"]), dtype="float32")
            assert abs(copy.size - original.size) <= 0.01 * original.size  # in fact equal
            assert row["text"] == bonafide_rows[row["path"]]["text"]  # text carried over from the manifest
            spectrum = [
                torch.stft(
                    torch.from_numpy(a), 512, 128, window=torch.hann_window(512), return_complex=True
                ).abs()
                for a in (original, copy)
            ]
            errors[report.system_dir.name].append(
                float(torch.linalg.norm(spectrum[0] - spectrum[1]) / torch.linalg.norm(spectrum[0]))
            )
            assert not np.allclose(copy, original, atol=1e-3)  # it is a copy synthesis, not the original
    # the fine setting reproduces the magnitude spectrum closely; the coarse one is a different system
    assert max(errors["GL-nfft512-hop128-mels80-it32"]) < 0.35
    assert min(errors["GL-nfft1024-hop256-mels40-it4"]) > max(errors["GL-nfft512-hop128-mels80-it32"])


@pytest.mark.parametrize("n_fft, hop", [(512, 128), (1024, 200)])
def test_vocoder_stft_is_torch_stft_and_inverts(n_fft, hop):
    from DSES.backends.vocoder import MelGriffinLim

    vocoder = MelGriffinLim(n_fft, hop)
    signal = np.random.default_rng(0).standard_normal(16001).astype(np.float32)
    window = torch.hann_window(n_fft)
    reference = torch.stft(torch.from_numpy(signal), n_fft, hop, window=window, return_complex=True).numpy().T
    spectrum = vocoder.stft(signal)
    assert spectrum.shape == reference.shape and np.abs(spectrum - reference).max() < 1e-4
    assert np.abs(vocoder.istft(spectrum, signal.size) - signal).max() < 1e-5


def test_vocoder_reads_the_esd_layout_and_its_transcripts(tmp_path, espeak):
    esd = tmp_path / "ESD"
    utterance = esd / "0011" / "Surprise" / "train" / "0011_001401.wav"
    utterance.parent.mkdir(parents=True)
    audio = espeak.synthesize("What a surprise!", "0011", "surprise")
    sf.write(str(utterance), np.stack([audio, audio], axis=1), espeak.sample_rate)  # stereo, 22.05 kHz
    (esd / "0011" / "0011.txt").write_text("0011_001401\tWhat a surprise!\tSurprise\n", encoding="utf-16")
    report = synthesize_corpus(
        "vocoder", None, tmp_path / "out", reference_audio=esd, system="GL", progress=False
    )
    (row,) = manifest_matches_files(report.system_dir)
    assert (row["path"], row["text"]) == ("0011/surprise/0011_001401.flac", "What a surprise!")
    assert float(row["duration"]) == pytest.approx(audio.size / espeak.sample_rate, rel=0.01)


def test_vocoder_world_when_pyworld_is_installed(bonafide_corpus, tmp_path):
    pytest.importorskip("pyworld", reason="WORLD copy synthesis needs the optional pyworld package")
    report = synthesize_corpus(
        get_backend("vocoder", method="world"),
        None,
        tmp_path,
        ["s1"],
        ["sad"],
        reference_audio=bonafide_corpus,
    )
    rows = manifest_matches_files(report.system_dir)
    assert report.system_dir.name == "WORLD-fp5" and len(rows) == 2
    for row in rows:
        original = sf.info(str(bonafide_corpus / row["path"])).frames
        assert sf.info(str(report.system_dir / row["path"])).frames == original


# ------------------------------------------------------------------------------------------- resume, failures
class CountingBackend(Backend):
    """eSpeak, counting calls; raises for texts containing FAIL and stops (like Ctrl-C) after `stop_after`."""

    name, system = "counting", "Counting"

    def __init__(self, espeak, stop_after=None):
        self.espeak, self.stop_after, self.calls = espeak, stop_after, []
        self.sample_rate = espeak.sample_rate

    def synthesize(self, text, speaker, emotion, reference_audio=None, seed=0):
        if self.stop_after is not None and len(self.calls) == self.stop_after:
            raise KeyboardInterrupt
        self.calls.append((speaker, emotion, text))
        if "FAIL" in text:
            raise RuntimeError("the model produced nothing")
        return self.espeak.synthesize(text, speaker, emotion)


def test_resume_after_a_crash_makes_only_the_missing_files(tmp_path, espeak):
    texts = [f"Sentence number {n}." for n in range(1, 5)]
    emotions = ["neutral", "sad"]
    crashing = CountingBackend(espeak, stop_after=3)
    with pytest.raises(KeyboardInterrupt):
        synthesize_corpus(crashing, texts, tmp_path, ["s1"], emotions, progress=False)
    system_dir = tmp_path / "Counting"
    assert len(manifest_matches_files(system_dir)) == 3  # the manifest was saved on the way out

    # a hard kill: a half-written file and a file whose manifest row was never saved
    (system_dir / "s1" / "sad").mkdir(exist_ok=True)
    (system_dir / "s1" / "sad" / "00002.flac.partial").write_bytes(b"half a file")
    rows = read_manifest(system_dir / "manifest.csv")
    with (system_dir / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(rows[1:])
        writer.writerow({**rows[0], "path": "s1/sad/00004.flac", "id": "00004"})  # a row without a file
    lost_row = rows[0]["path"]

    resumed = CountingBackend(espeak)
    report = synthesize_corpus(resumed, texts, tmp_path, ["s1"], emotions, progress=False)
    assert (report.made, report.skipped, report.failed) == (5, 3, [])
    assert len(resumed.calls) == 5
    assert not {(e, t) for _, e, t in resumed.calls} & {(e, t) for _, e, t in crashing.calls}
    rows = {row["path"]: row for row in manifest_matches_files(system_dir)}
    assert len(rows) == 8
    assert rows[lost_row]["text"] == texts[int(rows[lost_row]["id"]) - 1]  # rebuilt from the plan

    # deleting outputs and re-running remakes exactly those
    for path in ("s1/neutral/00001.flac", "s1/sad/00003.flac"):
        (system_dir / path).unlink()
    again = CountingBackend(espeak)
    report = synthesize_corpus(again, texts, tmp_path, ["s1"], emotions, progress=False)
    assert (report.made, report.skipped) == (2, 6)
    assert sorted((e, t) for _, e, t in again.calls) == [("neutral", texts[0]), ("sad", texts[2])]
    assert len(manifest_matches_files(system_dir)) == 8


def test_failures_are_counted_listed_and_the_run_goes_on(tmp_path, espeak):
    backend = CountingBackend(espeak)
    texts = ["One good sentence.", "This one will FAIL.", "Another good one."]
    report = synthesize_corpus(backend, texts, tmp_path, ["s1"], ["happy", "angry"], progress=False)
    assert report.made == 4
    assert sorted(path for path, _ in report.failed) == ["s1/angry/00002.flac", "s1/happy/00002.flac"]
    assert all("RuntimeError: the model produced nothing" in message for _, message in report.failed)
    assert len(manifest_matches_files(report.system_dir)) == 4
    listed = (report.system_dir / "failures.txt").read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in listed) == ["s1/angry/00002.flac", "s1/happy/00002.flac"]


def test_cli_lists_failures_and_exits_1(tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("good\tHello there.\nbad\tA bad one.\n")
    # an unknown eSpeak voice fails every sentence of that speaker only
    argv = ["--backend", "espeak", "--texts", str(texts), "--out", str(tmp_path), "--speakers", "s1", "x"]
    argv += ["--emotions", "neutral", "--option", 'voices={"x": "no-such-voice"}', "--no_progress"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert (
        "2 failed" in err and "x/neutral/good.flac: ValueError: eSpeak NG has no voice 'no-such-voice'" in err
    )
    assert len(manifest_matches_files(tmp_path / "eSpeak")) == 2


def test_cli_script_runs_as_a_file(tmp_path):
    texts = tmp_path / "t.txt"
    texts.write_text("Good evening.\n")
    command = [sys.executable, str(REPO_ROOT / "DSES" / "synthesize.py"), "--backend", "espeak"]
    command += ["--texts", str(texts), "--out", str(tmp_path), "--emotions", "sad", "--no_progress"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2 made, 0 already there, 0 failed" in done.stdout
    assert len(manifest_matches_files(tmp_path / "eSpeak")) == 2


# --------------------------------------------------------------------------------------- ASVspoof LA layout
def test_la_export_pairs_bonafide_and_spoofs_in_the_same_split(bonafide_corpus, tmp_path):
    spoof = synthesize_corpus(
        get_backend("vocoder", n_iter=2),
        None,
        tmp_path / "dses",
        reference_audio=bonafide_corpus,
        progress=False,
    )
    written = export_la_layout(bonafide_corpus, [spoof.system_dir], tmp_path / "LA", split_by="speaker")
    index = list(csv.DictReader(written["index"].open()))
    assert len(index) == 40
    splits = {}
    for row in index:
        splits.setdefault(row["speaker"], set()).add(row["split"])
        assert (
            tmp_path / "LA" / f"ASVspoof2019_LA_{row['split']}" / "flac" / f"{row['utt_id']}.flac"
        ).is_file()
    assert all(len(s) == 1 for s in splits.values())  # disjoint speakers
    lines = [
        line.split() for split in ("train", "dev", "eval") for line in written[split].read_text().splitlines()
    ]
    assert len(lines) == 40
    assert {(fields[3], fields[4]) for fields in lines} == {("-", "bonafide"), ("A01", "spoof")}
    again = export_la_layout(bonafide_corpus, [spoof.system_dir], tmp_path / "LA", split_by="speaker")
    assert list(csv.DictReader(again["index"].open())) == index


# ------------------------------------------------------------------------------------------- Zonos (fake)
UPSTREAM_ZONOS_VECTORS = {
    "happy": [1, 0.0256, 0.0256, 0.0256, 0.0256, 0.0256, 0.2564, 0.3077],
    "sad": [0.3077, 1, 0.0256, 0.0256, 0.0256, 0.0256, 0.2564, 0.3077],
    "angry": [0.3, 0.02, 0.02, 0.02, 0.02, 1, 0.2, 0.3],
    "surprise": [0.3077, 0.0256, 0.0256, 0.0256, 1, 0.0256, 0.2564, 0.3077],
    "neutral": [0.3077, 0.0256, 0.0256, 0.0256, 0.0256, 0.0256, 0.2564, 0.3077],
}


def fake_zonos(monkeypatch):
    calls = {"from_pretrained": [], "embed": [], "cond": [], "prepare": [], "generate": []}

    class FakeZonos:
        @classmethod
        def from_pretrained(cls, repo_id, revision=None, device="cuda"):
            calls["from_pretrained"].append((repo_id, device))
            model = cls()
            model.autoencoder = types.SimpleNamespace(
                sampling_rate=44100,
                decode=lambda codes: torch.from_numpy(sine(440.0, 0.5, 44100))[None, None].to(torch.bfloat16),
            )
            return model

        def make_speaker_embedding(self, wav, sr):
            calls["embed"].append((tuple(wav.shape), wav.dtype, sr, wav.clone()))
            return torch.full((1, 128), float(len(calls["embed"])))

        def prepare_conditioning(self, cond_dict):
            calls["prepare"].append(cond_dict)
            return torch.zeros(2, 5, 8)

        def generate(self, prefix_conditioning, max_new_tokens=86 * 30, progress_bar=True):
            calls["generate"].append(progress_bar)
            return torch.zeros(1, 9, 20, dtype=torch.long)

    def make_cond_dict(text="", language="en-us", speaker=None, emotion=None, device="cuda", **kwargs):
        calls["cond"].append({"text": text, "language": language, "speaker": speaker, "emotion": emotion})
        return {"text": text}

    install_fake_modules(
        monkeypatch,
        {
            "zonos": {},
            "zonos.model": {"Zonos": FakeZonos},
            "zonos.conditioning": {"make_cond_dict": make_cond_dict},
            "zonos.utils": {"DEFAULT_DEVICE": "cpu"},
        },
    )
    return calls


def test_zonos_backend_calls_and_output_handling(monkeypatch, tmp_path, reference_speakers):
    calls = fake_zonos(monkeypatch)
    report = synthesize_corpus(
        "zonos", SENTENCES, tmp_path / "out", reference_audio=reference_speakers, progress=False
    )
    assert (report.made, report.failed) == (20, [])
    assert calls["from_pretrained"] == [("Zyphra/Zonos-v0.1-transformer", "cpu")]
    # one speaker embedding per speaker (the speakers found in the reference folder, in order), made from
    # that speaker's own speech at 16 kHz as a (1, T) float tensor
    assert len(calls["embed"]) == 2
    for (shape, dtype, rate, wav), speaker in zip(calls["embed"], ("0011", "0012")):
        assert (shape[0], dtype, rate) == (1, torch.float32, 16000)
        assert np.allclose(wav[0].numpy(), speaker_speech_16k(reference_speakers, speaker), atol=1e-6)
    # each (speaker, sentence) in the five upstream emotion vectors, with that speaker's embedding
    assert [float(c["speaker"][0, 0]) for c in calls["cond"]] == [1.0] * 10 + [2.0] * 10
    assert all(c["text"] in SENTENCES and c["language"] == "en-us" for c in calls["cond"])
    for vector in UPSTREAM_ZONOS_VECTORS.values():
        assert sum(c["emotion"] == vector for c in calls["cond"]) == 4
    assert calls["generate"] == [False] * 20
    # 0.5 s of 440 Hz at 44.1 kHz (bfloat16, (1, 1, T)) -> 0.5 s of 440 Hz at 16 kHz, mono
    rows = manifest_matches_files(tmp_path / "out" / "Zonos")
    assert {r["speaker"] for r in rows} == {"0011", "0012"}
    audio, rate = sf.read(str(tmp_path / "out" / "Zonos" / "0012" / "angry" / "00002.flac"))
    assert rate == 16000 and audio.ndim == 1 and audio.size == pytest.approx(8000, abs=2)
    assert dominant_frequency(audio, rate) == pytest.approx(440, abs=4)
    for row in rows:
        assert json.loads(row["settings"])["emotion_vector"] == UPSTREAM_ZONOS_VECTORS[row["emotion"]]


# ------------------------------------------------------------------------------------------- CosyVoice (fake)
def fake_cosyvoice(monkeypatch, prompt_parameter: str):
    """CosyVoice2 as released in 2025 (prompt as a 16 kHz tensor) or later (prompt as a file path)."""
    calls = {"init": [], "instruct": []}

    def chunks():
        for _ in range(2):  # one chunk per text segment, (1, T) at 24 kHz
            yield {"tts_speech": torch.from_numpy(sine(1000.0, 0.5, 24000))[None]}

    class TensorPromptCosyVoice2:
        sample_rate = 24000

        def __init__(self, model_dir, load_jit=False, load_trt=False, fp16=False):
            calls["init"].append((model_dir, load_jit, load_trt, fp16))

        def inference_instruct2(
            self, tts_text, instruct_text, prompt_speech_16k, zero_shot_spk_id="", stream=False, speed=1.0
        ):
            assert prompt_speech_16k.dtype == torch.float32 and prompt_speech_16k.shape[0] == 1
            calls["instruct"].append((tts_text, instruct_text, prompt_speech_16k[0].numpy(), stream, speed))
            yield from chunks()

    class PathPromptCosyVoice2(TensorPromptCosyVoice2):
        def inference_instruct2(
            self, tts_text, instruct_text, prompt_wav, zero_shot_spk_id="", stream=False, speed=1.0
        ):
            audio, rate = sf.read(prompt_wav, dtype="float32")
            assert rate == 16000
            calls["instruct"].append((tts_text, instruct_text, audio, stream, speed))
            yield from chunks()

    fake = TensorPromptCosyVoice2 if prompt_parameter == "prompt_speech_16k" else PathPromptCosyVoice2
    install_fake_modules(
        monkeypatch, {"cosyvoice": {}, "cosyvoice.cli": {}, "cosyvoice.cli.cosyvoice": {"CosyVoice2": fake}}
    )
    return calls


def speaker_speech_16k(reference_root: Path, speaker: str) -> np.ndarray:
    files = sorted((reference_root / speaker / "Neutral").glob("*.wav"))
    return np.concatenate([load_audio_16k(f) for f in files])


@pytest.mark.parametrize("prompt_parameter", ["prompt_speech_16k", "prompt_wav"])
def test_cosyvoice_backend_calls_and_output_handling(
    monkeypatch, tmp_path, reference_speakers, prompt_parameter
):
    calls = fake_cosyvoice(monkeypatch, prompt_parameter)
    report = synthesize_corpus(
        "cosyvoice",
        SENTENCES[:1],
        tmp_path / "out",
        ["0012"],
        reference_audio=reference_speakers,
        progress=False,
    )
    assert (report.made, report.failed) == (5, [])
    assert calls["init"] == [("iic/CosyVoice2-0.5B", False, False, False)]
    expected = {
        f"Please speak in a very {w} tone." for w in ("neutral", "happy", "angry", "sad", "surprised")
    }
    if prompt_parameter == "prompt_wav":  # later CosyVoice: the caller ends the instruction
        expected = {e + "<|endofprompt|>" for e in expected}
    assert {instruct_text for _, instruct_text, _, _, _ in calls["instruct"]} == expected
    # the prompt is the speaker's own neutral speech, at 16 kHz (the file variant is 16-bit)
    speech = speaker_speech_16k(reference_speakers, "0012")
    for tts_text, _, prompt, stream, speed in calls["instruct"]:
        assert (tts_text, stream, speed) == (SENTENCES[0], False, 1.0)
        assert prompt.shape == speech.shape and np.allclose(prompt, speech, atol=1e-4)
    # two 0.5 s chunks at 24 kHz -> 1 s at 16 kHz, 1 kHz tone kept
    rows = manifest_matches_files(tmp_path / "out" / "CosyVoice")
    assert all(float(r["duration"]) == pytest.approx(1.0, abs=1e-3) for r in rows)
    audio, rate = sf.read(str(tmp_path / "out" / "CosyVoice" / "0012" / "surprise" / "00001.flac"))
    assert dominant_frequency(audio, rate) == pytest.approx(1000, abs=4)
    assert {json.loads(r["settings"])["instruction"] for r in rows} == {
        e.replace("<|endofprompt|>", "") for e in expected
    }


# ------------------------------------------------------------------------------------------- EmoSpeech (fake)
def fake_emospeech(monkeypatch, data_dir: Path):
    calls = {"load": [], "batches": [], "mels": []}
    hop = 192

    @dataclasses.dataclass
    class TrainConfig:
        sample_rate: int = 16000
        hop_length: int = hop
        device: str = "cuda"
        testing_checkpoint: str = "/app/data/emospeech.ckpt"
        vocoder_checkpoint_path: str = "/app/data/g_01800000"
        phones_path: str = "/app/data/phones.json"

    class Generator:
        def __init__(self, **config):
            calls["generator_config"] = config

        def load_state_dict(self, state):
            calls["vocoder_state"] = state

        def remove_weight_norm(self):
            pass

        def eval(self):
            return self

    class FastSpeechLightning:
        @classmethod
        def load_from_checkpoint(cls, path, config, vocoder, stft, train, map_location=None):
            calls["load"].append((path, train, map_location))
            model = cls()
            model.vocoder, model.stft, model.device = vocoder, stft, torch.device("cpu")
            model.model = model.forward_model
            return model

        def to(self, device):
            return self

        def eval(self):
            return self

        def forward_model(self, device, batch):
            calls["batches"].append(batch)
            frames = 3 * batch["texts"].shape[1]
            return {"mel_len": torch.tensor([frames]), "predicted_mel": torch.randn(1, frames + 5, 80)}

    def synthesize_wav_from_mel(mel, vocoder, stft):
        calls["mels"].append(tuple(mel.shape))
        return sine(300.0, mel.shape[0] * hop / 16000, 16000)

    install_fake_modules(
        monkeypatch,
        {
            "config": {},
            "config.config": {"TrainConfig": TrainConfig},
            "src": {},
            "src.models": {"Generator": Generator, "TorchSTFT": lambda **config: "stft"},
            "src.models.acoustic_model": {},
            "src.models.acoustic_model.fastspeech": {},
            "src.models.acoustic_model.fastspeech.lightning_model": {
                "FastSpeechLightning": FastSpeechLightning
            },
            "src.utils": {},
            "src.utils.vocoder_utils": {
                "load_checkpoint": lambda path: {"generator": f"weights of {Path(path).name}"},
                "synthesize_wav_from_mel": synthesize_wav_from_mel,
            },
            "g2p_en": {"G2p": lambda: lambda text: ["HH", "AH0", "L", "OW1", " ", ",", "CH", "."]},
        },
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "phones.json").write_text(
        json.dumps({"S": 5, "P": 6, "IY1": 7, "CH": 8, "HH": 9, "AH0": 10, "L": 11})
    )
    (data_dir / "emospeech.ckpt").write_bytes(b"")
    (data_dir / "g_01800000").write_bytes(b"")
    return calls


def test_emospeech_backend_calls_and_output_handling(monkeypatch, tmp_path):
    calls = fake_emospeech(monkeypatch, tmp_path / "data")
    texts = [("a1", "S P IY1 CH"), ("a2", "Hello, speech.")]
    report = synthesize_corpus(
        "emospeech",
        texts,
        tmp_path / "out",
        ["0013", "10"],
        ["neutral", "angry", "surprise"],
        backend_options={"data_dir": str(tmp_path / "data")},
        progress=False,
    )
    # "Hello, speech." -> g2p gives OW1, which is not in phones.json: a clear failure, the run goes on
    assert report.made == 6
    assert {path.split("/")[-1] for path, _ in report.failed} == {"a2.flac"}
    assert all("OW1" in message and "phones.json" in message for _, message in report.failed)
    assert calls["load"] == [(str(tmp_path / "data" / "emospeech.ckpt"), False, "cpu")]
    assert calls["vocoder_state"] == "weights of g_01800000"
    made = [b for b in calls["batches"] if b["texts"].shape[1] == 4]
    assert sorted((int(b["speakers"][0]), int(b["emotions"][0])) for b in made) == [
        (3, 0),
        (3, 1),
        (3, 4),
        (10, 0),
        (10, 1),
        (10, 4),
    ]
    for batch in made:
        assert batch["texts"].tolist() == [[5, 6, 7, 8]] and batch["text_lens"].tolist() == [4]
        assert batch["ids"] == [f"{int(batch['speakers'][0])}_0_{int(batch['emotions'][0])}"]
        assert batch["mels"] is None and batch["durations"] is None
    assert set(calls["mels"]) == {(12, 80)}  # the predicted mel cut to its predicted length
    rows = manifest_matches_files(tmp_path / "out" / "EmoSpeech")
    assert all(float(r["duration"]) == pytest.approx(12 * 192 / 16000, abs=1e-3) for r in rows)
    assert {(r["speaker"], json.loads(r["settings"])["speaker_id"]) for r in rows} == {
        ("0013", 3),
        ("10", 10),
    }


# ------------------------------------------------------------------------------------------- missing packages
@pytest.mark.parametrize(
    "backend, package, hint",
    [
        ("zonos", "zonos", "pip install -e ./Zonos"),
        ("cosyvoice", "cosyvoice", "git clone --recursive https://github.com/FunAudioLLM/CosyVoice"),
        ("emospeech", "src", "git clone https://github.com/deepvk/emospeech"),
    ],
)
def test_missing_tts_package_names_the_install_command(monkeypatch, backend, package, hint):
    monkeypatch.setitem(sys.modules, package, None)  # makes `import package` fail
    with pytest.raises(ImportError, match=f"'{backend}' back-end needs .*Install it with: .*{hint}"):
        get_backend(backend)


# ------------------------------------------------------------------------------------------- notebooks
@pytest.mark.parametrize(
    "name, backend", [("Zonos", "zonos"), ("CosyVoice", "cosyvoice"), ("EmoSpeech", "emospeech")]
)
def test_notebooks_are_thin_valid_drivers_of_synthesize_corpus(name, backend):
    import ast

    from DSES.backends import backend_class

    notebook = json.loads((REPO_ROOT / "DSES" / f"{name}.ipynb").read_text())
    assert notebook["nbformat"] == 4 and notebook["cells"]
    calls = []
    for cell in notebook["cells"]:
        assert cell["cell_type"] in ("code", "markdown") and isinstance(cell["source"], list)
        if cell["cell_type"] != "code":
            continue
        python = "".join(line for line in cell["source"] if not line.lstrip().startswith(("!", "%")))
        tree = ast.parse(python)  # every cell is valid Python once the shell and magic lines are set aside
        assert not any(isinstance(node, (ast.FunctionDef, ast.ClassDef)) for node in ast.walk(tree))
        calls += [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "synthesize_corpus"
        ]
    (call,) = calls
    assert call.args[0].value == backend
    options = next(k.value for k in call.keywords if k.arg == "backend_options")
    accepted = inspect.signature(backend_class(backend).__init__).parameters
    assert {key.value for key in options.keys} <= set(accepted)
    allowed = set(inspect.signature(synthesize_corpus).parameters)
    assert {k.arg for k in call.keywords} <= allowed


def test_la_split_assignment_gives_every_split_a_speaker():
    from collections import Counter

    from DSES.la_layout import assign_splits

    for n in range(3, 8):
        counts = Counter(assign_splits([f"s{i}" for i in range(n)], (0.6, 0.2, 0.2), seed=0).values())
        assert set(counts) == {"train", "dev", "eval"} and sum(counts.values()) == n, (n, counts)


def test_cli_refuses_an_out_that_is_a_file_and_an_unknown_option(tmp_path, capsys):
    out_file = tmp_path / "not_a_folder"
    out_file.write_text("x")
    argv = ["--backend", "espeak", "--texts", str(tmp_path / "t.txt"), "--no_progress"]
    assert main([*argv, "--out", str(out_file)]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"error: --out {out_file}: exists and is not a folder (the DSES root to write into)"
    )
    (tmp_path / "t.txt").write_text("Hello there.\n")
    assert main(["--backend", "vocoder", "--out", str(tmp_path / "o"), "--option", "nfft=1024"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the 'vocoder' back-end has no option 'nfft' (did you mean 'n_fft'?)")
    assert "\n" not in err
