"""Every registered architecture, built from a tiny config: forward, backward, frozen parts, strict weight
round trip; and the options every model reads through models.options."""

import warnings

import pytest
import torch

import models

TINY_AASIST = {
    "architecture": "AASIST",
    "first_conv": 32,
    "filts": [15, [1, 4], [4, 4], [4, 8], [8, 8]],
    "gat_dims": [8, 8],
    "pool_ratios": [0.5, 0.5, 0.5, 0.5],
    "temperatures": [2.0, 2.0, 100.0, 100.0],
}
TINY_FUSION = {"aasist_config": TINY_AASIST, "aasist_path": None, "ser_path": None}
TINY_XLSR = {"ssl_path": None, "ssl_size": "tiny"}
EMOTION_SAMPLES = 48_081  # the shortest input the ACRNN front-end takes (300 frames)

# architecture -> (tiny model_config, samples per input, classes)
TINY = {
    "AASIST": (TINY_AASIST, 4_000, 2),
    "ACRNN": ({"architecture": "ACRNN", "num_classes": 5}, EMOTION_SAMPLES, 5),
    "AASIST_Concat": ({"architecture": "AASIST_Concat", **TINY_FUSION}, EMOTION_SAMPLES, 2),
    "AASIST_FiLM": ({"architecture": "AASIST_FiLM", **TINY_FUSION}, EMOTION_SAMPLES, 2),
    "AASIST_GFiLM": ({"architecture": "AASIST_GFiLM", **TINY_FUSION}, EMOTION_SAMPLES, 2),
    "AASIST_WAV2VEC": (
        {
            "architecture": "AASIST_WAV2VEC",
            **TINY_XLSR,
            "filts": [24, [1, 4], [4, 4], [4, 8], [8, 8]],
            "gat_dims": [8, 8],
        },
        16_000,
        2,
    ),
    # its views need exactly 64600 samples; a frozen emotion encoder keeps the test fast (and covers freezing)
    "AMSDF": ({"architecture": "AMSDF", **TINY_XLSR, "freeze_emotion": True}, 64_600, 2),
}


def build(model_config, seed):
    torch.manual_seed(seed)
    with warnings.catch_warnings():  # null weight paths of frozen parts warn; intended here
        warnings.simplefilter("ignore", UserWarning)
        return models.build_model(model_config)


def waveforms(samples, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(2, samples, generator=generator) * 0.1


def eval_logits(model, x):
    model.eval()
    with torch.no_grad():
        return model(x)[1]


def test_every_registered_architecture_has_a_tiny_config():
    assert set(TINY) == set(models.ARCHITECTURES)


@pytest.mark.parametrize("name", sorted(models.ARCHITECTURES))
def test_forward_backward_and_strict_weight_round_trip(name, tmp_path):
    model_config, samples, classes = TINY[name]
    model = build(model_config, seed=0).train()
    frozen = [m for m in model.modules() if isinstance(m, models.Frozen)]
    assert all(not m.training for part in frozen for m in part.modules())  # frozen parts stay in eval mode

    x = waveforms(samples)
    embedding, logits = model(x)
    assert logits.shape == (2, classes) and embedding.shape[0] == 2
    assert torch.isfinite(logits).all() and torch.isfinite(embedding).all()
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1])).backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for _, p in trainable)
    assert all(torch.isfinite(p.grad).all() for _, p in trainable if p.grad is not None)
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)
    assert all(not p.requires_grad for part in frozen for p in part.parameters())

    weights = tmp_path / f"{name}.pth"
    torch.save(model.state_dict(), weights)
    expected = eval_logits(model, x)
    fresh = build(model_config, seed=1)
    before = fresh.state_dict()
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())  # the load matters
    models.load_weights(fresh, weights)
    torch.testing.assert_close(eval_logits(fresh, x), expected, rtol=0, atol=0)


def test_misspelt_option_names_the_closest_known_key_in_one_line():
    with pytest.raises(models.ConfigError) as info:
        models.build_model({**TINY_AASIST, "nb_filts": TINY_AASIST["filts"]})
    message = str(info.value)
    assert "\n" not in message
    assert message == "AASIST model_config: unknown key 'nb_filts' (did you mean 'filts'?)"
    # the same check without building anything, and inside a fusion model's aasist_config
    with pytest.raises(
        models.ConfigError, match=r"aasist_config: unknown key 'gat_dim' \(did you mean 'gat_dims'"
    ):
        models.validate_model_config(
            {**TINY["AASIST_FiLM"][0], "aasist_config": {**TINY_AASIST, "gat_dim": [8, 8]}}
        )
    with pytest.raises(models.ConfigError, match=r"unknown key 'ssl_pth' \(did you mean 'ssl_path'\?\)"):
        models.validate_model_config({**TINY["AMSDF"][0], "ssl_pth": "x.pt"})


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("filts", "eight", r"filts must be \[size, \[in, out\]"),
        ("filts", [15, [1, 4], [4, 4], [4, 8]], r"filts must be \[size"),
        ("first_conv", "128", 'first_conv must be an integer, got "128"'),
        ("first_conv", True, "first_conv must be an integer, got true"),
        ("gat_dims", [8, 8.5], "gat_dims must be a list of 2 integers"),
        ("temperatures", [2.0, 2.0, "hot", 100.0], "temperatures must be a list of 4 numbers"),
        ("pool_ratios", None, "pool_ratios must not be null"),
    ],
)
def test_wrong_types_are_refused_with_the_key_named(key, value, expected):
    with pytest.raises(models.ConfigError, match=expected) as info:
        models.validate_model_config({**TINY_AASIST, key: value})
    assert str(info.value).startswith(f"AASIST model_config: {key} ") and "\n" not in str(info.value)
    with pytest.raises(models.ConfigError, match=expected):
        models.build_model({**TINY_AASIST, key: value})


def test_missing_required_key_and_wrong_choice():
    with pytest.raises(models.ConfigError, match="AASIST model_config lacks the required key 'gat_dims'"):
        models.validate_model_config({k: v for k, v in TINY_AASIST.items() if k != "gat_dims"})
    with pytest.raises(models.ConfigError, match="ACRNN model_config lacks the required key 'num_classes'"):
        models.validate_model_config({"architecture": "SER"})
    with pytest.raises(models.ConfigError, match=r'ssl_size must be "tiny" or "xlsr_300m", got "huge"'):
        models.validate_model_config({**TINY["AASIST_WAV2VEC"][0], "ssl_size": "huge"})
    with pytest.raises(models.ConfigError, match="ser_config: freeze must be true, got false"):
        models.validate_model_config({**TINY["AASIST_Concat"][0], "ser_config": {"freeze": False}})
    with pytest.raises(models.ConfigError, match="model_config must be a JSON object, got list"):
        models.validate_model_config([TINY_AASIST])


def test_options_are_coerced_and_defaults_filled():
    canonical = models.validate_model_config(
        {
            "architecture": "AASIST_GFILM",  # an upstream spelling
            **TINY_FUSION,
            "legacy_swap_time_freq": "True",  # the upstream configs' string booleans
            "legacy_gate_class_order": "false",
            "ser_num_classes": 5.0,
            "aasist_config": {**TINY_AASIST, "temperatures": [2, 2, 100, 100]},
        }
    )
    assert canonical["architecture"] == "AASIST_GFiLM"
    assert canonical["legacy_swap_time_freq"] is True and canonical["legacy_gate_class_order"] is False
    assert canonical["ser_num_classes"] == 5 and type(canonical["ser_num_classes"]) is int
    assert canonical["aasist_config"]["temperatures"] == [2.0, 2.0, 100.0, 100.0]
    assert all(type(t) is float for t in canonical["aasist_config"]["temperatures"])
    assert canonical["ser_features"] == "logfbank" and canonical["nb_samp"] == 64_600  # defaults
    assert models.validate_model_config(canonical) == canonical  # canonical is a fixed point

    # "False" is false: bool("False") would have been true
    encoder = build({"architecture": "ACRNN", "num_classes": 4, "legacy_swap_time_freq": "False"}, seed=0)
    assert encoder.legacy_swap_time_freq is False
    swapped = build({"architecture": "ACRNN", "num_classes": 4, "legacy_swap_time_freq": "true"}, seed=0)
    assert swapped.legacy_swap_time_freq is True


def test_upstream_nested_weight_paths_are_read_when_the_top_level_keys_are_absent(tmp_path):
    torch.manual_seed(3)
    aasist = models.build_model(TINY_AASIST)
    torch.save(aasist.state_dict(), tmp_path / "aasist.pth")
    model_config = {
        "architecture": "AASIST_Concat",
        "aasist_config": {**TINY_AASIST, "aasist_path": str(tmp_path / "aasist.pth")},
        "ser_config": {"ser_path": None, "freeze": "true"},
    }
    canonical = models.validate_model_config(model_config)
    assert canonical["aasist_path"] == str(tmp_path / "aasist.pth") and canonical["ser_path"] is None
    model = build(model_config, seed=4)
    torch.testing.assert_close(model.aasist.state_dict(), aasist.state_dict(), rtol=0, atol=0)
    with pytest.raises(models.ConfigError, match="lacks the required key 'ser_path'"):
        models.validate_model_config({k: v for k, v in model_config.items() if k != "ser_config"})
