"""Eval sets: each reader on its layout in miniature (real-format protocol lines, audio the test writes), one
clear line for a broken layout, the 2021 LA revised t-DCF and per-condition EERs equal to the official
eval-package's output, and ``main.py --eval --eval_set A=... --eval_set B=...`` in one run."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from evalset_cases import (
    EMOFAKE_LINES,
    EMOSPOOF_LAYOUTS,
    EMOSPOOF_SYSTEMS,
    EMOTIONS,
    la2021_lines,
    write_df2021,
    write_emofake,
    write_emospoof_tts,
    write_in_the_wild,
    write_la2021,
)

from antispoof.evalsets import parse_eval_set, read_eval_set, trial_table
from antispoof.evalsets.asvspoof2021 import LA_FACTORS, official_table, read_asv_scores, read_la2021
from antispoof.metrics import ASVScores, compute_min_tdcf2021, tdcf2021_coefficients
from antispoof.protocols import ProtocolError

FIXTURE = Path(__file__).parent / "fixtures" / "asvspoof2021_la"
EMOFAKE_LABEL = Path("English", "test", "label.txt")


def test_la2021_reader_keeps_the_eval_subset_with_codec_transmission_and_attack(tmp_path):
    root = write_la2021(tmp_path)
    evalset = read_eval_set("la21", root)
    lines = [line.split() for line in la2021_lines() if line.endswith(" eval")]
    assert [t.utt_id for t in evalset.trials] == [f[1] for f in lines]  # progress trials left out, order kept
    first_spoof = next(t for t in evalset.trials if t.key == "spoof")
    fields = next(f for f in lines if f[1] == first_spoof.utt_id)
    assert (first_spoof.system, first_spoof.extra["codec"], first_spoof.extra["transmission"]) == (
        fields[4],
        fields[2],
        fields[3],
    )
    assert first_spoof.path == root / "ASVspoof2021_LA_eval" / "flac" / f"{first_spoof.utt_id}.flac"
    assert evalset.asv is not None and evalset.attributes == ("system", "codec", "transmission")
    table = trial_table(evalset)
    assert set(table.column("codec")) == {"none", "alaw", "pstn"}


def test_la2021_reader_finds_the_stage_1_keys_and_says_when_there_is_no_asv(tmp_path):
    root = write_la2021(tmp_path, keys_dir="LA-keys-stage-1/keys", asv=False)
    evalset = read_eval_set("LA21", root)
    assert evalset.asv is None and "no min t-DCF" in evalset.notes[0]


def test_df2021_reader_has_compression_source_and_vocoder(tmp_path):
    evalset = read_eval_set("DF21", write_df2021(tmp_path))
    assert len(evalset.trials) == 16
    spoof = next(t for t in evalset.trials if t.key == "spoof")
    assert spoof.extra["vocoder"] == "neural_vocoder_autoregressive" and spoof.extra["source"] == "vcc2018"
    assert spoof.extra["compression"] == "low_mp3" and spoof.system == "A11"


def test_in_the_wild_reader_maps_bona_fide_labels_and_speakers(tmp_path):
    evalset = read_eval_set("ITW", write_in_the_wild(tmp_path))
    assert [t.key for t in evalset.trials[:3]] == ["spoof", "bonafide", "bonafide"]
    assert evalset.trials[1].speaker == "Barack Obama" and evalset.trials[1].path.name == "1.wav"


def test_emospoof_tts_pairs_spoofs_with_esd_of_the_same_speakers_and_emotions(tmp_path):
    evalset = read_eval_set("EmoSpoofTTS", write_emospoof_tts(tmp_path))
    bonafide = [t for t in evalset.trials if t.key == "bonafide"]
    assert {t.speaker for t in bonafide} == {"0012", "0014"}  # 0019 has no spoofs
    assert {t.emotion for t in bonafide} == {"angry", "happy", "neutral", "sad"}  # no surprise spoofs
    assert {t.system for t in evalset.trials if t.key == "spoof"} == {"StyleTTS2", "F5-TTS", "CosyVoice"}


@pytest.mark.parametrize("layout", sorted(EMOSPOOF_LAYOUTS))
def test_emospoof_tts_infers_system_speaker_and_emotion_from_any_folder_and_file_names(tmp_path, layout):
    root = write_emospoof_tts(tmp_path, layout=layout)
    evalset = read_eval_set("EmoSpoofTTS", root)
    spoofs = [t for t in evalset.trials if t.key == "spoof"]
    bonafide = [t for t in evalset.trials if t.key == "bonafide"]
    expected = {
        (sys, spk, emo.lower()) for sys in EMOSPOOF_SYSTEMS for spk in ("0012", "0014") for emo in EMOTIONS
    }
    assert {(t.system, t.speaker, t.emotion) for t in spoofs} == expected and len(spoofs) == 24
    assert {(t.speaker, t.emotion) for t in bonafide} == {
        (s, e) for _, s, e in expected
    }  # 0019, surprise out
    assert all(t.system == "-" and t.path.parent.name == "test" for t in bonafide)
    assert {t.utt_id for t in spoofs} == {
        p.relative_to(root).with_suffix("").as_posix() for p in _spoof_files(root)
    }
    assert len({t.utt_id for t in evalset.trials}) == 32


def _spoof_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.*") if p.is_file() and p.relative_to(root).parts[0] != "ESD"]


def test_emospoof_tts_a_top_folder_of_another_name_is_the_system(tmp_path):
    root = write_emospoof_tts(tmp_path)
    (root / "Zonos" / "0014" / "Sad").mkdir(parents=True)
    shutil.copy(next(iter(_spoof_files(root))), root / "Zonos" / "0014" / "Sad" / "0014_Sad_0.wav")
    spoofs = [t for t in read_eval_set("EmoSpoofTTS", root).trials if t.key == "spoof"]
    assert {t.system for t in spoofs} == {
        *EMOSPOOF_SYSTEMS,
        "Zonos",
    }  # a system named in the path wins over the folder
    assert [(t.speaker, t.emotion) for t in spoofs if t.system == "Zonos"] == [("0014", "sad")]


@pytest.mark.parametrize(
    "layout, stray, missing",
    [
        ("names", "wavs/0014_000008.wav", "system"),  # "wavs" is never a system
        ("esd_ids", "F5-TTS/extra/0014_009999t1.wav", "emotion"),  # no ESD utterance number
        ("flat", "styletts2/0014_0012_000008.wav", "speaker"),  # two speakers
        ("speaker_first", "0012/Angry/Happy/f5tts/0012_000008.wav", "emotion"),  # two emotions
        ("dses", "notes/readme.wav", "speaker, emotion"),
    ],
)
def test_emospoof_tts_a_file_whose_attributes_cannot_be_inferred_is_one_line(
    tmp_path, layout, stray, missing
):
    root = write_emospoof_tts(tmp_path, layout=layout)
    (root / stray).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(next(iter(_spoof_files(root))), root / stray)
    with pytest.raises(ProtocolError) as info:
        read_eval_set("EmoSpoofTTS", root)
    message = str(info.value)
    assert (
        f"cannot infer the {missing} of 1 of 25 spoof files, e.g. {stray} (" in message
        and "\n" not in message
    )


def test_emofake_reads_label_txt_with_speaker_emotion_and_conversion_model_from_the_names(tmp_path):
    root = write_emofake(tmp_path)
    evalset = read_eval_set("EmoFake", root)
    assert [t.utt_id for t in evalset.trials] == [
        n.removesuffix(".wav") for n, _ in EMOFAKE_LINES
    ]  # in order
    assert [t.key for t in evalset.trials] == ["spoof" if fake else "bonafide" for _, fake in EMOFAKE_LINES]
    rows = [(t.speaker, t.system, t.emotion, t.extra["source_emotion"]) for t in evalset.trials[:4]]
    assert rows == [
        ("0014", "-", "angry", "-"),
        ("0014", "S6", "surprise", "sad"),  # a conversion's emotion is its target emotion
        ("0014", "-", "neutral", "-"),
        ("0014", "S7", "angry", "sad"),
    ]
    assert evalset.trials[6].path == root / "English" / "test" / "wav" / "S6_Sad2Neutral_0014_001398.wav"
    assert {t.speaker for t in evalset.trials} == {"0014", "0018"}
    assert all(t.extra["language"] == "English" for t in evalset.trials)
    assert evalset.attributes == ("emotion", "system") and evalset.reference_group == "neutral"
    assert set(trial_table(evalset).column("system")) == {"-", "S4", "S6", "S7"}


def test_emofake_chinese_part_below_an_emofake_folder_with_bonafide_spoof_labels(tmp_path):
    root = write_emofake(tmp_path, language="Chinese", labels=("bonafide", "spoof"), top="EmoFake")
    evalset = read_eval_set("EmoFake_CH", root)
    assert len(evalset.trials) == len(EMOFAKE_LINES) and evalset.trials[1].key == "spoof"
    assert evalset.trials[0].path == root / "EmoFake" / "Chinese" / "test" / "wav" / "0014_Angry_000355.wav"
    with pytest.raises(ProtocolError, match="no EmoFake English test folder"):
        read_eval_set("EmoFake", root)  # the English part is not there


def _append(path: Path, text: str) -> None:
    with path.open("a") as handle:
        handle.write(text)


def _label_line(line: str):
    """A breaker that appends ``line`` to the English EmoFake label.txt."""
    return lambda root: _append(root / EMOFAKE_LABEL, line)


@pytest.mark.parametrize(
    "name, breaker, message",
    [
        ("LA21", lambda root: shutil.rmtree(root / "keys"), "no ASVspoof 2021 LA keys"),
        (
            "LA21",
            lambda root: _append(root / "keys/LA/CM/trial_metadata.txt", "LA_0001 LA_E_9 alaw\n"),
            ":27: expected 8 fields",
        ),
        (
            "ITW",
            lambda root: _append(root / "release_in_the_wild/meta.csv", "12.wav,X,fake\n"),
            ":14: label 'fake'",
        ),
        ("EmoSpoofTTS", lambda root: shutil.rmtree(root / "ESD"), "ESD bona fide"),
        (
            "EmoSpoofTTS",
            lambda root: [shutil.rmtree(root / s) for s in EMOSPOOF_SYSTEMS],
            "no EmoSpoof-TTS spoofs",
        ),
        ("EmoFake", lambda root: shutil.rmtree(root / "English" / "test"), "no EmoFake English test folder"),
        ("EmoFake", lambda root: (root / EMOFAKE_LABEL).unlink(), "label.txt: protocol file not found"),
        ("EmoFake", _label_line("0014_Sad_001101.wav\n"), "label.txt:9: expected 2"),
        ("EmoFake", _label_line("0014_Sad_001101.wav maybe\n"), ":9: label 'maybe'"),
        ("EmoFake", _label_line("0014_Sad_001101.wav genuine\n"), "label.txt:9: audio file"),
        (
            "EmoFake",
            _label_line("S3_Neutral2Sad_0014_000101.wav genuine\n"),
            "label.txt:9: a genuine file's name 'S3_Neutral2Sad_0014_000101' is not <speaker>_<Emotion>_<utt>",
        ),
        (
            "EmoFake",
            _label_line("0014_000101.wav fake\n"),
            "label.txt:9: a fake file's name '0014_000101' is not S<k>_<Source>2<Target>_<speaker>_<utt>",
        ),
        ("DF21", lambda root: shutil.rmtree(root / "ASVspoof2021_DF_eval"), "ASVspoof2021_DF_eval/flac"),
    ],
)
def test_a_broken_layout_is_one_line_naming_the_file(tmp_path, name, breaker, message):
    writers = {
        "LA21": write_la2021,
        "ITW": write_in_the_wild,
        "EmoSpoofTTS": write_emospoof_tts,
        "EmoFake": write_emofake,
        "DF21": write_df2021,
    }
    root = writers[name](tmp_path)
    breaker(root)
    with pytest.raises(ProtocolError) as info:
        read_eval_set(name, root)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_eval_set_argument_needs_a_known_name_and_a_path():
    assert parse_eval_set("LA21=/data/x=y") == ("LA21", "/data/x=y")
    for bad in ("LA21", "=x", "Nope=/x"):
        with pytest.raises(ValueError):
            parse_eval_set(bad)


def _fixture_table(tmp_path):
    root = tmp_path / "la21"
    shutil.copytree(FIXTURE / "keys", root / "keys")
    (root / "ASVspoof2021_LA_eval" / "flac").mkdir(parents=True)
    evalset = read_la2021(root)
    scores_by_trial = dict(line.split() for line in (FIXTURE / "cm_scores.txt").read_text().splitlines())
    scores = np.array([float(scores_by_trial[t.utt_id]) for t in evalset.trials])
    return evalset, scores


def test_2021_la_min_tdcf_and_per_condition_eers_equal_the_official_package(tmp_path):
    evalset, scores = _fixture_table(tmp_path)
    asv = read_asv_scores(evalset.asv["metadata"], evalset.asv["scores"])
    ours = official_table(trial_table(evalset).columns, scores, LA_FACTORS, asv)
    official = json.loads((FIXTURE / "official_la2021.json").read_text())
    n_compared = 0
    for metric in ("min_tdcf", "eer_percent"):
        for row, cols in official[metric].items():
            for col, value in cols.items():
                mine = ours[metric][row][col]
                assert (mine is None) == (value is None), (metric, row, col)
                if value is not None:
                    assert mine == pytest.approx(value, abs=1e-6), (metric, row, col)
                    n_compared += 1
    assert n_compared > 150  # 14 x 8 conditions, two metrics, a few without data
    assert official["min_tdcf"]["Pooled"]["Pooled"] == pytest.approx(0.6346161712659838)


def test_revised_tdcf_coefficients_are_nan_without_spoofs_and_the_cost_is_normalised():
    asv = ASVScores(np.array([3.0, 4.0, 5.0]), np.array([-1.0, 0.0, 4.5]), np.array([]))
    assert all(np.isnan(tdcf2021_coefficients(asv)))
    asv = ASVScores(np.array([3.0, 4.0, 5.0]), np.array([-1.0, 0.0, 4.5]), np.array([2.0, 6.0]))
    coefficients = tdcf2021_coefficients(asv)
    perfect = compute_min_tdcf2021([2.0, 3.0], [-1.0, 0.0, 1.0], coefficients)
    assert perfect == pytest.approx(
        coefficients.c0 / (coefficients.c0 + min(coefficients.c1, coefficients.c2))
    )


def test_dses_and_la2019_readers_reuse_the_existing_layouts(tmp_path):
    from corpus import write_asvspoof_la, write_dses

    dses = read_eval_set("DSES", write_dses(tmp_path / "dses", per_folder=1))
    assert {t.emotion for t in dses.trials} == {"neutral", "happy", "angry", "sad", "surprise"}
    assert {t.system for t in dses.trials} == {"-", "Zonos", "CosyVoice"}  # bona fide: "-"
    assert set(trial_table(dses).columns) == {"utt_id", "speaker", "key", "emotion", "system"}
    la = read_eval_set("LA19", write_asvspoof_la(tmp_path, n_per_class=2))
    assert [t.system for t in la.trials] == ["-", "A07", "-", "A08"] and la.attributes == ("system",)


def test_emotional_sets_break_down_by_emotion_against_neutral(tmp_path):
    from antispoof.recipes.evalsets import set_metrics

    evalset = read_eval_set("EmoSpoofTTS", write_emospoof_tts(tmp_path))
    rng = np.random.default_rng(0)
    scores = np.array([rng.normal(1.0 if t.key == "bonafide" else -1.0) for t in evalset.trials])
    result = set_metrics(evalset, scores, n_bootstrap=20)
    assert result["n_bonafide"] == 8 and result["n_spoof"] == 24
    emotions = result["breakdown"]["groups"]["emotion"]
    assert set(emotions) == {"angry", "happy", "neutral", "sad"} and "vs_reference" in emotions["angry"]
    assert result["breakdown"]["reference_group"] == "neutral" and "min_tdcf" not in result
