"""Emotion fusion detectors (AASIST_Concat, AASIST_FiLM, AASIST_GFiLM) over a frozen AASIST and ACRNN."""

import json
import warnings

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, logits_on_thread_counts, shared_path

from models import ConfigError, WeightLoadError, build_model
from models.AASIST_GFiLM import GatingBlock
from models.ACRNN import Model as ACRNN

FUSION_CONFIGS = ["AASIST_Concat", "AASIST_FiLM", "AASIST_GFiLM"]
HEADS = {
    "AASIST_Concat": ["test_linear"],
    "AASIST_FiLM": ["film", "classifier"],
    "AASIST_GFiLM": ["film", "gated_block", "classifier"],
}

# head parameter names and shapes of the upstream's published fused checkpoints (akzykova/aasist_ser)
CLASSIFIER = {
    "0.weight": None,
    "0.bias": (256,),
    "1.weight": (256,),
    "1.running_mean": (256,),
    "4.weight": (128, 256),
    "5.running_var": (128,),
    "7.weight": (2, 128),
    "7.bias": (2,),
}
UPSTREAM_HEADS = {
    "AASIST_Concat": {"test_linear.weight": (2, 416), "test_linear.bias": (2,)},
    "AASIST_FiLM": {
        "film.cm_ln.weight": (256,),
        "film.condition_to_gamma_beta.0.weight": (128, 256),
        "film.condition_to_gamma_beta.2.running_mean": (128,),
        "film.gamma_linear.weight": (160, 128),
        "film.beta_linear.bias": (160,),
        "film.sv_ln.weight": (160,),
        **{f"classifier.{k}": v or (256, 160) for k, v in CLASSIFIER.items()},
    },
    "AASIST_GFiLM": {
        "film.cm_ln.weight": (160,),
        "film.condition_to_gamma_beta.0.weight": (128, 160),
        "film.condition_to_gamma_beta.2.running_mean": (128,),
        "film.gamma_linear.weight": (256, 128),
        "film.beta_linear.bias": (256,),
        "film.sv_ln.weight": (256,),
        "gated_block.linear1.1.weight": (256, 256),
        "gated_block.linear2.1.bias": (256,),
        **{f"classifier.{k}": v or (256, 256) for k, v in CLASSIFIER.items()},
    },
}


def fusion_config(name, upstream=False, **overrides):
    """The model_config of config/[upstream/]<name>.conf with the published AASIST and a random (null) ACRNN."""
    folder = REPO_ROOT / "config" / ("upstream" if upstream else "")
    model_config = json.loads((folder / f"{name}.conf").read_text())["model_config"]
    model_config.update(aasist_path=str(shared_path("weights", "AASIST.pth")), ser_path=None)
    model_config.update(overrides)
    return model_config


def build_quietly(model_config):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return build_model(model_config)


@pytest.fixture(scope="module")
def parity():
    return np.load(shared_path("fixtures", "aasist_parity.npz"))


@pytest.mark.parametrize("name", FUSION_CONFIGS)
def test_a_training_step_changes_the_head_only(name, parity):
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="ser_path is null"):
        model = build_model(fusion_config(name))
    model.train()
    assert not model.aasist.training and not model.ser.training
    assert not any(m.training for m in model.aasist.modules()) and not any(
        m.training for m in model.ser.modules()
    )
    heads = [getattr(model, head) for head in HEADS[name]]
    assert all(m.training for head in heads for m in head.modules())

    frozen_before = {f"aasist.{k}": v.clone() for k, v in model.aasist.state_dict().items()}
    frozen_before.update({f"ser.{k}": v.clone() for k, v in model.ser.state_dict().items()})
    head_before = {k: v.clone() for k, v in model.state_dict().items() if k not in frozen_before}
    assert head_before and all(k.split(".")[0] in HEADS[name] for k in head_before)

    seen = {}
    model.aasist.register_forward_hook(lambda module, inputs, output: seen.update(aasist=output))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    waves = torch.from_numpy(parity["inputs"][:2])
    embedding, logits = model(waves)
    assert logits.shape == (2, 2) and embedding.shape[0] == 2
    if name == "AASIST_Concat":
        assert torch.allclose(embedding.norm(dim=1), torch.ones(2), atol=1e-5)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1]), weight=torch.tensor([0.1, 0.9]))
    optimizer.zero_grad()
    loss.backward()
    for param in list(model.aasist.parameters()) + list(model.ser.parameters()):
        assert not param.requires_grad and param.grad is None
    optimizer.step()

    # the frozen AASIST ran in eval mode (no dropout) with the published weights, while the model trained
    assert np.allclose(seen["aasist"][1].detach().numpy(), parity["AASIST_logits"][:2], atol=1e-3)
    after = model.state_dict()
    for key, value in frozen_before.items():
        assert torch.equal(after[key], value), f"frozen {key} changed"
    changed = [key for key, value in head_before.items() if not torch.equal(after[key], value)]
    unchanged = sorted(
        set(head_before) - set(changed) - {k for k in head_before if k.endswith("num_batches_tracked")}
    )
    assert not unchanged, f"head tensors that did not train: {unchanged}"


@pytest.mark.parametrize("name", FUSION_CONFIGS)
def test_state_dict_keeps_the_upstream_names(name):
    model = build_quietly({**fusion_config(name), "aasist_path": None})
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for key, shape in UPSTREAM_HEADS[name].items():
        assert shapes.get(key) == shape, key
    acrnn_keys = {f"ser.{k}" for k in ACRNN({"num_classes": 4}).state_dict()}
    assert {k for k in shapes if k.startswith("ser.")} == acrnn_keys
    assert shapes["ser.fc2.weight"] == (4, 64)  # the published ser_acrnn.pth is a 4-emotion model
    assert all(k.split(".")[0] in {"aasist", "ser", *HEADS[name]} for k in shapes)
    # the upstream configs' architecture spellings build the same model
    upstream_name = {"AASIST_FiLM": "AASIST_FILM", "AASIST_GFiLM": "AASIST_GFILM"}.get(name)
    if upstream_name:
        again = build_quietly({**fusion_config(name), "aasist_path": None, "architecture": upstream_name})
        assert type(again) is type(model)


@pytest.mark.parametrize("name", FUSION_CONFIGS)
def test_scores_do_not_depend_on_the_thread_count(name):
    """As AASIST's (tests/test_aasist.py): a torchrun rank runs one thread, a single process several, and their
    score files must agree exactly. The fusion models add the ACRNN and their heads to AASIST's path."""
    torch.manual_seed(0)
    model = build_quietly(fusion_config(name)).eval()  # the official AASIST, a random ACRNN and head
    # an input on which the logits of the code before the fix did depend on the thread count
    waveforms = torch.randn(2, 64600, generator=torch.Generator().manual_seed(1)) * 0.1
    logits = logits_on_thread_counts(model, waveforms)
    assert torch.equal(logits[0], logits[1]) and torch.equal(logits[0], logits[2])


def test_configs_reproduce_the_upstream_emotion_input_and_defaults_are_correct():
    for name in FUSION_CONFIGS:
        model = build_quietly({**fusion_config(name, upstream=True), "aasist_path": None})
        assert model.ser.frontend.recipe == "melspec" and model.ser.legacy_swap_time_freq
        model = build_quietly({**fusion_config(name), "aasist_path": None})
        assert model.ser.frontend.recipe == "logfbank" and not model.ser.legacy_swap_time_freq
    assert build_quietly(
        {**fusion_config("AASIST_GFiLM", upstream=True), "aasist_path": None}
    ).gated_block.legacy_class_order
    assert not build_quietly(
        {**fusion_config("AASIST_GFiLM"), "aasist_path": None}
    ).gated_block.legacy_class_order
    # without the keys: the recipe ser_acrnn.pth was trained on, the correct layout, the true class order
    upstream_keys = ("ser_features", "legacy_swap_time_freq", "legacy_gate_class_order")
    model_config = {
        k: v for k, v in fusion_config("AASIST_GFiLM", aasist_path=None).items() if k not in upstream_keys
    }
    model = build_quietly(model_config)
    assert model.ser.frontend.recipe == "logfbank" and not model.ser.legacy_swap_time_freq
    assert not model.gated_block.legacy_class_order


def test_frozen_parts_load_from_their_paths(tmp_path):
    torch.manual_seed(1)
    encoder = ACRNN({"num_classes": 4})
    state = encoder.state_dict()
    state["bn.running_mean"] = torch.randn(768)
    weights = tmp_path / "ser_acrnn.pth"
    torch.save(state, weights)
    with pytest.warns(UserWarning, match="aasist_path is null"):
        model = build_model(fusion_config("AASIST_FiLM", aasist_path=None, ser_path=str(weights)))
    for key, value in state.items():
        assert torch.equal(model.ser.state_dict()[key], value), key

    with pytest.raises(WeightLoadError, match="fc2.weight"):
        build_quietly(
            fusion_config("AASIST_FiLM", aasist_path=None, ser_path=str(weights), ser_num_classes=5)
        )
    with pytest.raises(WeightLoadError, match="not found"):
        build_quietly(fusion_config("AASIST_FiLM", aasist_path=str(tmp_path / "absent.pth")))

    model_config = fusion_config("AASIST_Concat", aasist_path=None)
    del model_config["aasist_path"]
    with pytest.raises(ConfigError, match="aasist_path"):
        build_quietly(model_config)
    # the upstream configs keep the paths inside aasist_config / ser_config
    model_config["aasist_config"] = {**model_config["aasist_config"], "aasist_path": None}
    del model_config["ser_path"]
    model_config["ser_config"] = {"ser_path": str(weights), "freeze": "true"}
    model = build_quietly(model_config)
    assert torch.equal(model.ser.bn.running_mean, state["bn.running_mean"])


def test_gate_weights_the_plain_embedding_by_bona_fide_probability():
    torch.manual_seed(0)
    plain, modulated = torch.randn(3, 256), torch.randn(3, 256)
    sure_bona_fide = torch.tensor([[-30.0, 30.0]] * 3)  # class 1 = bona fide
    sure_spoof = sure_bona_fide.flip(1)
    gate = GatingBlock(256)
    refined = gate.linear2(gate.linear1(modulated))
    assert torch.allclose(gate(modulated, plain, sure_bona_fide), plain, atol=1e-6)
    assert torch.allclose(gate(modulated, plain, sure_spoof), refined, atol=1e-6)
    half = gate(modulated, plain, torch.zeros(3, 2))
    assert torch.allclose(half, (plain + refined) / 2, atol=1e-6)

    legacy = GatingBlock(256, legacy_class_order=True)  # the upstream read softmax[:, 0] as "p_bona"
    legacy.load_state_dict(gate.state_dict())
    assert torch.allclose(legacy(modulated, plain, sure_bona_fide), refined, atol=1e-6)
    assert torch.allclose(legacy(modulated, plain, sure_spoof), plain, atol=1e-6)
