"""ACRNN emotion encoder and its log-mel + deltas front-end."""

import json
import math

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, shared_path

from models import ConfigError, build_model
from models.ACRNN import Model as ACRNN
from models.emotion_features import EmotionFeatures

SER_CONF = REPO_ROOT / "config" / "SER.conf"
THREE_SECONDS = 48081  # the fewest samples that give python_speech_features' 300 frames


@pytest.fixture(scope="module")
def ser_fixture():
    return np.load(shared_path("fixtures", "ser_features.npz"))


def test_logfbank_recipe_matches_python_speech_features(ser_fixture):
    features = EmotionFeatures("logfbank")(torch.from_numpy(ser_fixture["inputs"]))
    assert features.shape == (5, 3, 300, 40)
    for channel, key in enumerate(["logfbank", "logfbank_delta1", "logfbank_delta2"]):
        reference = ser_fixture[key][:, :300]  # (5, 403, 40): frames x bands
        error = np.abs(features[:, channel].double().numpy() - reference).max()
        assert error < 1e-3, f"{key}: max abs error {error}"
    # input 5 ends in digital silence: zero energies are floored at machine epsilon before the log
    assert features[4, 0].min().item() == pytest.approx(math.log(np.finfo(float).eps), abs=1e-4)


def test_melspec_recipe_matches_torchaudio(ser_fixture):
    features = EmotionFeatures("melspec")(torch.from_numpy(ser_fixture["inputs"]))
    assert features.shape == (5, 3, 300, 40)
    log_mel = features[:, 0].double().numpy()
    reference = ser_fixture["melspec_logmel"].transpose(0, 2, 1)[:, :300]  # (5, 40, 404) -> frames x bands
    error = np.abs(log_mel - reference)
    # where the mel energy is near the 1e-6 log offset, float32 FFT round-off moves the log by ~1e-3 (the
    # reference itself is 1.4e-3 off a float64 computation there); elsewhere the match is well inside 1e-3
    strong = reference > math.log(1e-5)
    assert strong.mean() > 0.5
    assert error[strong].max() < 1e-3
    assert error.max() < 2e-3
    for channel, key in [(1, "melspec_delta1"), (2, "melspec_delta2")]:
        reference = ser_fixture[key].transpose(0, 2, 1)[:, :300]
        error = np.abs(features[:, channel].double().numpy() - reference).max()
        assert error < 1e-3, f"{key}: max abs error {error}"


@pytest.mark.parametrize("recipe", ["logfbank", "melspec"])
def test_front_end_is_batched_and_keeps_only_what_it_needs(recipe):
    torch.manual_seed(0)
    waves = torch.randn(3, 64600) * 0.1
    frontend = EmotionFeatures(recipe)
    batched = frontend(waves)
    single = torch.cat([frontend(w.unsqueeze(0)) for w in waves])
    assert torch.allclose(batched, single, atol=1e-5)
    # the first 300 frames do not depend on audio after ~3.04 s (the front-end crops there)
    changed = waves.clone()
    changed[:, 50000:] = 0.5
    assert torch.equal(frontend(changed), batched)
    # the two recipes are different computations
    other = EmotionFeatures("melspec" if recipe == "logfbank" else "logfbank")(waves)
    assert not torch.allclose(other, batched, atol=1e-1)
    assert frontend.state_dict() == {}  # no weights: the encoder's state dict stays the published layout


@pytest.mark.parametrize("recipe, shortest", [("logfbank", THREE_SECONDS), ("melspec", 47840)])
def test_front_end_rejects_audio_shorter_than_300_frames(recipe, shortest):
    frontend = EmotionFeatures(recipe)
    assert frontend(torch.zeros(1, shortest)).shape == (1, 3, 300, 40)
    with pytest.raises(ValueError, match="at least"):
        frontend(torch.zeros(1, shortest - 1))


def test_unknown_recipe_and_missing_num_classes_are_config_errors():
    with pytest.raises(ConfigError, match="mfcc"):
        ACRNN({"num_classes": 4, "features": "mfcc"})
    with pytest.raises(ConfigError, match="num_classes"):
        ACRNN({"architecture": "ACRNN"})


def test_state_dict_has_the_published_ser_acrnn_layout():
    shapes = {k: tuple(v.shape) for k, v in ACRNN({"num_classes": 4}).state_dict().items()}
    expected = {
        "conv1.weight": (128, 3, 5, 3),
        "conv2.weight": (256, 128, 5, 3),
        "conv6.weight": (256, 256, 5, 3),
        "linear1.weight": (768, 2560),
        "bn.running_var": (768,),
        "rnn.weight_ih_l0": (512, 768),
        "rnn.weight_hh_l0_reverse": (512, 128),
        "a_fc1.weight": (1, 256),
        "a_fc2.weight": (1, 1),
        "fc1.weight": (64, 256),
        "fc2.weight": (4, 64),
    }
    for key, shape in expected.items():
        assert shapes[key] == shape, key
    prefixes = {key.split(".")[0] for key in shapes}
    assert prefixes == {f"conv{i}" for i in range(1, 7)} | {
        "linear1",
        "bn",
        "rnn",
        "a_fc1",
        "a_fc2",
        "fc1",
        "fc2",
    }


def test_shapes_attention_and_layout():
    torch.manual_seed(0)
    model = ACRNN({"num_classes": 5}).eval()
    seen = {}
    model.conv1.register_forward_hook(lambda module, inputs, output: seen.update(conv1=inputs[0]))
    model.rnn.register_forward_hook(lambda module, inputs, output: seen.update(rnn=output[0]))
    features = torch.randn(2, 3, 300, 40)
    with torch.no_grad():
        frames, pooled = model.encode(features)
        logits = model.classify(pooled)
    assert frames.shape == (2, 150, 256) and pooled.shape == (2, 256) and logits.shape == (2, 5)
    assert torch.allclose(pooled, frames.sum(dim=1), atol=1e-5)
    # frames are the BiLSTM outputs scaled by attention weights that are positive and sum to 1 over time
    weights = frames / seen["rnn"]
    assert torch.allclose(weights, weights[..., :1].expand_as(weights), atol=1e-4)
    assert torch.allclose(weights[..., 0].sum(dim=1), torch.ones(2), atol=1e-4)
    assert (weights > 0).all()
    assert torch.equal(seen["conv1"], features)  # correct layout: time along the 5-tap axis

    legacy = ACRNN({"num_classes": 5, "legacy_swap_time_freq": True}).eval()
    legacy.load_state_dict(model.state_dict())
    legacy.conv1.register_forward_hook(lambda module, inputs, output: seen.update(legacy=inputs[0]))
    with torch.no_grad():
        legacy_frames, legacy_pooled = legacy.encode(features)
    # upstream fed (B, 3, 40, 300): x_emo[b, c, band, frame], and the reshape still made 150 steps of it
    assert seen["legacy"].shape == (2, 3, 40, 300)
    assert torch.equal(seen["legacy"], features.transpose(2, 3))
    assert legacy_frames.shape == (2, 150, 256)
    assert not torch.allclose(legacy_pooled, pooled, atol=1e-3)

    with pytest.raises(ValueError, match=r"\(B, 3, 300, 40\)"):
        model.encode(torch.randn(2, 3, 40, 300))


def test_ser_config_trains_a_step_on_cpu():
    config = json.loads(SER_CONF.read_text())
    model_config = config["model_config"]
    assert model_config["architecture"] == "ACRNN" and model_config["features"] == "logfbank"
    model = build_model(model_config)
    assert build_model({**model_config, "architecture": "SER"}).num_classes == 5  # upstream's name
    model.train()
    torch.manual_seed(0)
    waves = torch.randn(2, THREE_SECONDS) * 0.1
    embedding, logits = model(waves)
    assert embedding.shape == (2, 256) and logits.shape == (2, model_config["num_classes"])
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 3]))
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    assert model.conv1.weight.grad.abs().sum() > 0

    frames, pooled = model.eval().embed(waves)
    assert frames.shape == (2, 150, 256) and pooled.shape == (2, 256)
