"""The model registry, strict and safe weight loading, and frozen submodules."""

import copy
import json
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

import models

CONFIGS = sorted(Path(__file__).resolve().parents[1].glob("config/**/*.conf"))


def test_unknown_architecture_and_missing_key():
    with pytest.raises(models.ConfigError, match="unknown architecture 'RawNet9'.*known: AASIST"):
        models.build_model({"architecture": "RawNet9"})
    with pytest.raises(models.ConfigError, match="no 'architecture' key"):
        models.build_model({})


def test_upstream_names_are_accepted():
    assert models.canonical_architecture("AASIST_FILM") == "AASIST_FiLM"
    assert models.canonical_architecture("AASIST_GFILM") == "AASIST_GFiLM"


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_every_config_names_a_known_architecture(config):
    model_config = json.loads(config.read_text())["model_config"]
    models.canonical_architecture(model_config["architecture"])


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_every_shipped_model_config_is_valid_and_every_key_is_kept(config):
    model_config = json.loads(config.read_text())["model_config"]
    canonical = models.validate_model_config(model_config)
    assert set(model_config) <= set(canonical)
    for key, value in model_config.items():
        if key != "architecture" and not isinstance(value, dict):
            assert canonical[key] == value, key
    assert models.validate_model_config(canonical) == canonical


def test_no_model_overrides_train():
    """Frozen parts fix their own mode (models.freeze); a model's train() is nn.Module's."""
    import importlib

    for module_name in models.ARCHITECTURES.values():
        model_class = importlib.import_module(f"models.{module_name}").Model
        overriding = [c.__name__ for c in model_class.__mro__ if c is not nn.Module and "train" in vars(c)]
        assert not overriding, f"{module_name}: {overriding} override train()"


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
        self.head = nn.Linear(4, 2)


def test_load_weights_is_strict_and_lists_keys(tmp_path):
    model = Tiny()
    state = model.state_dict()
    good = tmp_path / "good.pth"
    torch.save(state, good)
    models.load_weights(Tiny(), good)

    # DataParallel's module. prefix is accepted
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "dp.pth")
    models.load_weights(Tiny(), tmp_path / "dp.pth")

    bad = dict(state)
    bad.pop("head.bias")
    bad["extra.weight"] = torch.zeros(1)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(
        models.WeightLoadError, match=r"missing keys: head\.bias; unexpected keys: extra\.weight"
    ):
        models.load_weights(Tiny(), tmp_path / "bad.pth")

    shape = dict(state)
    shape["head.weight"] = torch.zeros(3, 4)
    with pytest.raises(models.WeightLoadError, match=r"head\.weight \(3, 4\) != \(2, 4\)"):
        models.load_weights(Tiny(), shape)


def test_unsafe_or_missing_files_are_refused(tmp_path):
    torch.save({"payload": Path("/etc/passwd")}, tmp_path / "pickle.pth")  # any pickled object
    with pytest.raises(models.WeightLoadError, match="pickle.pth: cannot be loaded as a safe state dict"):
        models.load_state_dict(tmp_path / "pickle.pth")
    with pytest.raises(models.WeightLoadError, match="nowhere.pth: weight file not found"):
        models.load_state_dict(tmp_path / "nowhere.pth")
    (tmp_path / "cut.pth").write_bytes(b"PK\x03\x04truncated")
    with pytest.raises(models.WeightLoadError, match="cut.pth: cannot be loaded"):
        models.load_state_dict(tmp_path / "cut.pth")


def test_frozen_parts_stay_in_eval_mode():
    class Fused(nn.Module):
        def __init__(self):
            super().__init__()
            self.frozen = models.freeze(Tiny())
            self.head = nn.Linear(4, 2)

    model = Fused().train()
    assert model.training and model.head.training
    assert not model.frozen.training and not model.frozen.encoder[1].training
    assert not any(p.requires_grad for p in model.frozen.parameters())


def test_freezing_keeps_the_state_dict_and_survives_copies():
    tiny = Tiny()
    keys = list(tiny.state_dict())
    frozen = models.freeze(tiny)
    assert frozen is tiny and isinstance(frozen, Tiny) and isinstance(frozen, models.Frozen)
    assert list(frozen.state_dict()) == keys  # not wrapped: official weights still load strictly
    assert models.freeze(frozen) is frozen and type(frozen).__mro__.count(models.Frozen) == 1
    frozen.train()
    assert not frozen.training and not frozen.encoder[1].training and not frozen.encoder[2].training

    # a copy (SWA's AveragedModel deep-copies the model) and a pickle stay frozen and equal
    with torch.no_grad():
        frozen.encoder[1].running_mean.fill_(0.25)
    for copy_ in (copy.deepcopy(frozen), pickle.loads(pickle.dumps(frozen))):
        assert isinstance(copy_, models.Frozen) and isinstance(copy_, Tiny)
        copy_.train()
        assert not copy_.training and not copy_.encoder[1].training
        assert not any(p.requires_grad for p in copy_.parameters())
        torch.testing.assert_close(copy_.state_dict(), frozen.state_dict(), rtol=0, atol=0)
