"""XLS-R front-end: parity with fairseq on the fixtures, safe loading, HF round trip, prefix splitting."""

import json
import os
import sys

import numpy as np
import pytest
import torch
from conftest import shared_path

from models import WeightLoadError
from models.wav2vec2 import (
    XLSR,
    build_xlsr,
    fairseq_to_hf,
    hf_config_from_fairseq,
    load_checkpoint_file,
    parse_conv_layers,
    split_ssl_state,
)
from models.wav2vec2 import main as wav2vec2_main

CHECKPOINTS = ["tiny_xlsr_fairseq.pt", "tiny_xlsr_fairseq_namespace.pt", "tiny_xlsr_fairseq_dictconfig.pt"]
TOL = 1e-5


@pytest.fixture(scope="module")
def reference():
    data = np.load(shared_path("fixtures", "xlsr", "tiny_xlsr_reference.npz"))
    return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def fairseq_state():
    return torch.load(shared_path("fixtures", "xlsr", CHECKPOINTS[0]), weights_only=True)["model"]


def features_of(model, waveform):
    model.eval()
    with torch.no_grad():
        return model(torch.as_tensor(waveform)).numpy()


def max_err(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_fairseq_checkpoint_reproduces_reference(name, reference):
    model = XLSR.from_pretrained(shared_path("fixtures", "xlsr", name), trust_pickle=True).eval()
    with torch.no_grad():
        features, layers = model.layer_outputs(torch.from_numpy(reference["inputs"]))
    assert features.shape == reference["features"].shape == (2, 201, 64)
    assert max_err(features, reference["features"]) < TOL
    assert len(layers) == 2
    for i, layer in enumerate(layers):
        assert max_err(layer, reference[f"layer{i}"]) < TOL
    # the checkpoint's config, not a default, built the model
    assert model.config.num_hidden_layers == 2 and model.config.num_attention_heads == 4
    assert model.config.conv_dim == [32] * 7 and model.config.conv_stride == [5, 2, 2, 2, 2, 2, 2]
    assert model.config.layerdrop == 0.0 and not model.config.apply_spec_augment


def test_plain_checkpoint_needs_no_trust(reference):
    model = XLSR.from_pretrained(shared_path("fixtures", "xlsr", CHECKPOINTS[0]))
    assert max_err(features_of(model, reference["inputs"]), reference["features"]) < TOL


@pytest.mark.parametrize(
    "name, what", [(CHECKPOINTS[1], "argparse.Namespace"), (CHECKPOINTS[2], "OmegaConf DictConfig")]
)
def test_pickled_config_refused_without_trust(name, what):
    with pytest.raises(WeightLoadError) as info:
        XLSR.from_pretrained(shared_path("fixtures", "xlsr", name))
    message = str(info.value)
    assert name in message and what in message
    assert "weights_only=True" in message and "trust_pickle=True" in message and "run code" in message


def test_trusted_load_needs_neither_fairseq_nor_omegaconf():
    checkpoint = load_checkpoint_file(shared_path("fixtures", "xlsr", CHECKPOINTS[2]), trust_pickle=True)
    assert "omegaconf" not in sys.modules and "fairseq" not in sys.modules
    assert isinstance(checkpoint["model"]["post_extract_proj.weight"], torch.Tensor)


class _Exploit:
    """A pickle payload that would create a file if its reducer ran."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_trusted_load_runs_no_foreign_code(tmp_path):
    target = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"cfg": _Exploit(str(target)), "model": {}}, path)
    with pytest.raises(WeightLoadError, match="trust_pickle"):
        load_checkpoint_file(path)
    loaded = load_checkpoint_file(path, trust_pickle=True)
    assert not target.exists()
    assert type(loaded["cfg"]).__module__.startswith("inert.")


def test_hf_directory_round_trip(tmp_path, reference):
    model = XLSR.from_pretrained(shared_path("fixtures", "xlsr", CHECKPOINTS[0]))
    model.save_pretrained(tmp_path / "hf")
    assert (tmp_path / "hf" / "config.json").is_file()
    reloaded = XLSR.from_pretrained(tmp_path / "hf")
    waveform = reference["inputs"][:, :16000]
    assert np.array_equal(features_of(model, waveform), features_of(reloaded, waveform))
    assert build_xlsr(str(tmp_path / "hf")).config.hidden_size == 64


def test_hub_style_directory_with_pretraining_heads(tmp_path, reference):
    """Like facebook/wav2vec2-xls-r-300m: `wav2vec2.` prefix, weight_g/weight_v, heads, SpecAugment on."""
    model = XLSR.from_pretrained(shared_path("fixtures", "xlsr", CHECKPOINTS[0]))
    state = {}
    for key, value in model.model.state_dict().items():
        key = key.replace("parametrizations.weight.original0", "weight_g")
        key = key.replace("parametrizations.weight.original1", "weight_v")
        state["wav2vec2." + key] = value
    state["wav2vec2.masked_spec_embed"] = torch.zeros(64)
    state["quantizer.codevectors"] = torch.zeros(1, 640, 128)
    state["project_hid.weight"] = torch.zeros(16, 64)
    directory = tmp_path / "hub"
    directory.mkdir()
    torch.save(state, directory / "pytorch_model.bin")
    config = model.config.to_dict()
    config.update(mask_time_prob=0.075, apply_spec_augment=True, architectures=["Wav2Vec2ForPreTraining"])
    (directory / "config.json").write_text(json.dumps(config))
    reloaded = XLSR.from_pretrained(directory)
    assert reloaded.config.mask_time_prob == 0.0 and not hasattr(reloaded.model, "masked_spec_embed")
    assert max_err(features_of(reloaded, reference["inputs"]), reference["features"]) < TOL
    # SpecAugment is off: in train mode (all dropouts of this model are 0) the features do not change
    reloaded.train()
    with torch.no_grad():
        train_features = reloaded(torch.from_numpy(reference["inputs"])).numpy()
    assert max_err(train_features, reference["features"]) < TOL


@pytest.mark.parametrize(
    "prefix",
    [
        "ssl_model.model.",
        "text_view_extract.model.",
        "text_view_extract.model.model.",
        "w2v_encoder.w2v_model.",
        "module.ssl_model.model.",
    ],
)
def test_whole_model_state_dict_is_split(prefix, fairseq_state, reference, tmp_path):
    head = {"LL.weight": torch.ones(128, 64), "out_layer.bias": torch.zeros(2)}
    whole = {prefix + k: v for k, v in fairseq_state.items()}
    whole.update({("module." if prefix.startswith("module.") else "") + k: v for k, v in head.items()})
    ssl, rest, found = split_ssl_state(whole)
    assert found == prefix.removeprefix("module.")
    assert set(rest) == set(head) and set(ssl) == set(fairseq_state)
    model = XLSR.from_size("tiny")
    model.load_ssl_state(ssl)
    assert max_err(features_of(model, reference["inputs"]), reference["features"]) < TOL
    # the same from a file, the structure given by a named size
    torch.save(whole, tmp_path / "detector.pth")
    from_file = XLSR.from_pretrained(tmp_path / "detector.pth", size="tiny")
    assert max_err(features_of(from_file, reference["inputs"]), reference["features"]) < TOL


def test_split_without_wav2vec2_weights_is_an_error():
    with pytest.raises(WeightLoadError, match="no wav2vec 2.0 weights"):
        split_ssl_state({"LL.weight": torch.zeros(1)})


def test_mismatched_weights_are_named(fairseq_state):
    model = XLSR.from_size("tiny")
    broken = dict(fairseq_state)
    broken.pop("encoder.layers.1.fc2.bias")
    broken["encoder.layers.0.fc1.weight"] = torch.zeros(128, 64)
    with pytest.raises(WeightLoadError) as info:
        model.load_ssl_state(broken, label="broken.pt")
    message = str(info.value)
    assert "broken.pt" in message and "encoder.layers.1.feed_forward.output_dense.bias" in message
    assert "encoder.layers.0.feed_forward.intermediate_dense.weight (128, 64) != (256, 64)" in message
    with pytest.raises(WeightLoadError, match="unknown fairseq wav2vec 2.0 key 'encoder.extra.weight'"):
        fairseq_to_hf({**fairseq_state, "encoder.extra.weight": torch.zeros(1)})


def test_pretraining_keys_dropped(fairseq_state):
    converted = fairseq_to_hf(fairseq_state)
    assert not any(k.startswith(("quantizer", "project_q", "final_proj", "mask_emb")) for k in converted)
    assert "encoder.pos_conv_embed.conv.weight_g" in converted
    assert "feature_projection.layer_norm.weight" in converted  # fairseq's `layer_norm`


def test_conv_layers_parsed_without_eval():
    spec = "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]"
    assert parse_conv_layers(spec) == [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
    for bad in ["__import__('os').system('true')", "[(512, 10, 5)] * 10**9", "[(1, 2)]", "[x]"]:
        with pytest.raises(ValueError):
            parse_conv_layers(bad)


def test_dropouts_and_layerdrop_follow_the_checkpoint():
    config = hf_config_from_fairseq(
        {
            "encoder_layers": 2,
            "encoder_embed_dim": 64,
            "encoder_ffn_embed_dim": 256,
            "encoder_attention_heads": 4,
            "dropout": 0.1,
            "attention_dropout": 0.2,
            "activation_dropout": 0.3,
            "dropout_input": 0.4,
            "encoder_layerdrop": 0.05,
            "extractor_mode": "default",
            "layer_norm_first": False,
            "mask_prob": 0.65,
        }
    )
    assert (config.hidden_dropout, config.attention_dropout, config.activation_dropout) == (0.1, 0.2, 0.3)
    assert (config.feat_proj_dropout, config.layerdrop) == (0.4, 0.05)
    assert config.feat_extract_norm == "group" and not config.do_stable_layer_norm
    assert config.mask_time_prob == 0.0 and not config.apply_spec_augment


def test_feature_grad_mult_scales_conv_gradients():
    torch.manual_seed(0)
    plain = XLSR.from_size("tiny")
    scaled = XLSR.from_size("tiny", feature_grad_mult=0.1)
    scaled.load_state_dict(plain.state_dict())
    waveform = torch.randn(1, 4000)
    grads = []
    for model in (plain, scaled):
        model(waveform).pow(2).sum().backward()
        grads.append(model.model.feature_extractor.conv_layers[0].conv.weight.grad)
    torch.testing.assert_close(grads[1], grads[0] * 0.1, rtol=1e-4, atol=1e-8)
    frozen_conv = XLSR.from_size("tiny", feature_grad_mult=0.0)
    assert not any(p.requires_grad for p in frozen_conv.model.feature_extractor.parameters())


def test_named_sizes():
    tiny = build_xlsr(None, "tiny")
    assert tiny.out_dim == 64 and tiny.config.num_hidden_layers == 2
    assert build_xlsr("tiny").out_dim == 64
    with pytest.raises(ValueError, match="unknown XLS-R size"):
        XLSR.from_size("huge")


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = XLSR.from_size("tiny")
    checkpointed = XLSR.from_size("tiny")
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.set_gradient_checkpointing(True)
    assert checkpointed.gradient_checkpointing and not plain.gradient_checkpointing
    waveform = torch.randn(2, 8000)
    for model in (plain, checkpointed):
        model.train()
        model(waveform).pow(2).mean().backward()
    for a, b in zip(plain.parameters(), checkpointed.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6)


def test_bf16_autocast_returns_float32_close_to_float32(reference):
    model = XLSR.from_pretrained(shared_path("fixtures", "xlsr", CHECKPOINTS[0])).eval()
    model.bf16_autocast = True
    with torch.no_grad():
        features = model(torch.from_numpy(reference["inputs"]))
    assert features.dtype == torch.float32
    # bfloat16 keeps ~3 significant digits; the final LayerNorm output is O(1)
    assert max_err(features, reference["features"]) < 0.25
    assert np.corrcoef(features.numpy().ravel(), reference["features"].ravel())[0, 1] > 0.999


def test_convert_once_command(tmp_path, reference, capsys):
    source = shared_path("fixtures", "xlsr", CHECKPOINTS[2])
    with pytest.raises(WeightLoadError, match="trust_pickle"):
        wav2vec2_main([str(source), str(tmp_path / "refused")])
    wav2vec2_main([str(source), str(tmp_path / "hf"), "--trust-pickle"])
    assert "wrote" in capsys.readouterr().out
    converted = XLSR.from_pretrained(tmp_path / "hf")  # a plain directory now: no trust needed
    assert max_err(features_of(converted, reference["inputs"]), reference["features"]) < TOL
