"""AASIST_WAV2VEC and AMSDF with a tiny XLS-R: build from configs, train a step, reload, authors' keys."""

import json

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, shared_path

from models import ConfigError, WeightLoadError, build_model, load_weights
from models.AASIST_WAV2VEC import convert_checkpoint
from models.wav2vec2 import SSL_PREFIXES, XLSR

BATCH = 2
NB_SAMP = 64600


def tiny_config(name: str, **overrides) -> dict:
    """The shipped config's model_config with the XLS-R (and emotion weights) replaced by tiny random ones."""
    config = json.loads((REPO_ROOT / "config" / f"{name}.conf").read_text())
    model_config = config["model_config"]
    model_config.update(ssl_path=None, ssl_size="tiny")
    if "emotion_path" in model_config:
        model_config["emotion_path"] = None
    model_config.update(overrides)
    return model_config


def waveforms(seed: int = 0) -> torch.Tensor:
    """Two 4.04 s test signals: a vowel-like harmonic tone and noise bursts."""
    t = torch.arange(NB_SAMP) / 16000
    voiced = sum(torch.sin(2 * torch.pi * 150 * k * t) / k for k in range(1, 12)) * 0.2
    rng = np.random.default_rng(seed)
    noise = torch.from_numpy(rng.standard_normal(NB_SAMP).astype(np.float32)) * 0.1 * (torch.sin(6 * t) > 0)
    return torch.stack([voiced, noise]).float()


def train_step(model):
    model.train()
    embedding, logits = model(waveforms(), Freq_aug=True)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([1, 0]))
    loss.backward()
    return embedding, logits


def eval_outputs(model):
    model.eval()
    with torch.no_grad():
        return model(waveforms(1))


@pytest.fixture(scope="module")
def fairseq_tiny_state():
    return torch.load(shared_path("fixtures", "xlsr", "tiny_xlsr_fairseq.pt"), weights_only=True)["model"]


# ------------------------------------------------------------------------------------------------------------
# AASIST_WAV2VEC
# ------------------------------------------------------------------------------------------------------------


def test_aasist_wav2vec_trains_and_reloads(tmp_path):
    torch.manual_seed(0)
    model = build_model(tiny_config("AASIST_WAV2VEC"))
    embedding, logits = train_step(model)
    assert embedding.shape == (BATCH, 160) and logits.shape == (BATCH, 2)
    assert torch.isfinite(logits).all()
    # XLS-R is fine-tuned by default: gradients reach its first conv layer and the back-end
    assert model.ssl_model.model.feature_extractor.conv_layers[0].conv.weight.grad.abs().sum() > 0
    assert model.out_layer.weight.grad.abs().sum() > 0 and model.LL.weight.grad.abs().sum() > 0
    reference = eval_outputs(model)

    torch.save(model.state_dict(), tmp_path / "aasist_wav2vec.pth")
    torch.manual_seed(1)
    reloaded = build_model(tiny_config("AASIST_WAV2VEC"))
    load_weights(reloaded, tmp_path / "aasist_wav2vec.pth")
    for a, b in zip(reference, eval_outputs(reloaded)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("wrapper", ["", "module."])
def test_aasist_wav2vec_loads_authors_naming(wrapper, fairseq_tiny_state):
    """An SSL_Anti-spoofing checkpoint: fairseq-named `ssl_model.model.*` (pre-training heads included)."""
    model = build_model(tiny_config("AASIST_WAV2VEC"))
    head = {k: v for k, v in model.state_dict().items() if not k.startswith("ssl_model.")}
    authors = {**{"ssl_model.model." + k: v for k, v in fairseq_tiny_state.items()}, **head}
    assert (
        "ssl_model.model.quantizer.vars" in authors
        and "ssl_model.model.encoder.pos_conv.0.weight_g" in authors
    )
    authors = {wrapper + k: v for k, v in authors.items()}
    load_weights(model, model.convert_state_dict(authors), what="authors")
    # the loaded XLS-R is the fixture's: its features match fairseq's
    reference = np.load(shared_path("fixtures", "xlsr", "tiny_xlsr_reference.npz"))
    model.eval()
    with torch.no_grad():
        features = model.ssl_model(torch.from_numpy(reference["inputs"]))
    assert np.abs(features.numpy() - reference["features"]).max() < 1e-5
    # load_weights applies the key map itself: the authors' file loads as it is, strictly
    fresh = build_model(tiny_config("AASIST_WAV2VEC"))
    load_weights(fresh, authors, what="authors")
    torch.testing.assert_close(fresh.state_dict(), model.state_dict(), rtol=0, atol=0)
    # a checkpoint of another model is still refused, with the keys named
    authors.pop(wrapper + "out_layer.bias")
    with pytest.raises(WeightLoadError, match=r"missing keys: out_layer\.bias"):
        load_weights(fresh, authors)


def test_aasist_wav2vec_convert_command_and_pickled_ssl(tmp_path, fairseq_tiny_state):
    model = build_model(tiny_config("AASIST_WAV2VEC"))
    head = {k: v for k, v in model.state_dict().items() if not k.startswith("ssl_model.")}
    torch.save(
        {**{"ssl_model.model." + k: v for k, v in fairseq_tiny_state.items()}, **head}, tmp_path / "LA.pth"
    )
    convert_checkpoint(str(tmp_path / "LA.pth"), str(tmp_path / "converted.pth"), ssl_size="tiny")
    load_weights(model, tmp_path / "converted.pth")  # strict, no key map needed any more
    # ssl_path pointing at a checkpoint that pickles a Namespace: refused unless the config trusts it
    namespace_checkpoint = str(shared_path("fixtures", "xlsr", "tiny_xlsr_fairseq_namespace.pt"))
    with pytest.raises(WeightLoadError, match="trust_pickle"):
        build_model(tiny_config("AASIST_WAV2VEC", ssl_path=namespace_checkpoint))
    trusted = build_model(tiny_config("AASIST_WAV2VEC", ssl_path=namespace_checkpoint, trust_pickle=True))
    torch.testing.assert_close(
        trusted.ssl_model.model.feature_projection.projection.weight,
        fairseq_tiny_state["post_extract_proj.weight"],
    )


def test_aasist_wav2vec_frozen_ssl_stays_frozen():
    model = build_model(tiny_config("AASIST_WAV2VEC", freeze_ssl=True))
    train_step(model)
    assert not model.ssl_model.training and model.LL.training
    assert all(p.grad is None and not p.requires_grad for p in model.ssl_model.parameters())
    assert model.encoder[0][0].conv1.weight.grad is not None


def test_aasist_wav2vec_memory_options_are_applied():
    model = build_model(tiny_config("AASIST_WAV2VEC", gradient_checkpointing=True, bf16_autocast=True))
    assert model.ssl_model.gradient_checkpointing and model.ssl_model.bf16_autocast
    with pytest.raises(ConfigError, match="unknown key.*ssl_pth"):
        build_model(tiny_config("AASIST_WAV2VEC", ssl_pth="x.pt"))


# ------------------------------------------------------------------------------------------------------------
# AMSDF
# ------------------------------------------------------------------------------------------------------------


def test_amsdf_trains_and_reloads_and_swaps_classes(tmp_path, fairseq_tiny_state):
    torch.manual_seed(0)
    model = build_model(tiny_config("AMSDF"))
    embedding, logits = train_step(model)
    assert embedding.shape == (BATCH, 384) and logits.shape == (BATCH, 2)
    assert torch.isfinite(logits).all()
    for part in (
        model.audio_view_extract.encoder[0][0].conv1,  # audio view
        model.emo_view_extract.model.conv1,  # emotion encoder (fine-tuned, as the authors do)
        model.text_view_extract.model.model.feature_extractor.conv_layers[0].conv,  # XLS-R
        model.Core_AET.HtrgGAT_layer2.proj_with_att,
    ):
        assert part.weight.grad is not None and part.weight.grad.abs().sum() > 0
    reference = eval_outputs(model)

    torch.save(model.state_dict(), tmp_path / "amsdf.pth")
    swapped = build_model(tiny_config("AMSDF", bonafide_class=0))
    load_weights(swapped, tmp_path / "amsdf.pth")
    embedding, logits = eval_outputs(swapped)
    torch.testing.assert_close(embedding, reference[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(logits, reference[1].flip(-1), rtol=0, atol=1e-6)

    # the authors' layout: fairseq-named XLS-R directly under text_view_extract.model.
    authors = {k: v for k, v in model.state_dict().items() if not k.startswith("text_view_extract.model.")}
    authors.update({"text_view_extract.model." + k: v for k, v in fairseq_tiny_state.items()})
    assert "text_view_extract.model." in SSL_PREFIXES
    load_weights(swapped, swapped.convert_state_dict(authors), what="authors")
    ssl = swapped.text_view_extract.model
    assert isinstance(ssl, XLSR)
    torch.testing.assert_close(
        ssl.model.feature_projection.projection.weight, fairseq_tiny_state["post_extract_proj.weight"]
    )


def test_amsdf_config_errors():
    with pytest.raises(ConfigError, match="bonafide_class"):
        build_model(tiny_config("AMSDF", bonafide_class=2))
    with pytest.raises(ConfigError, match="nb_samp must be 64600"):
        build_model(tiny_config("AMSDF", nb_samp=16000))
