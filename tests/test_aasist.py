"""AASIST: parity with the official clovaai/aasist outputs, strict weight loading, training, fast CPU path."""

import json

import numpy as np
import pytest
import torch

import models
from models import AASIST
from tests.conftest import REPO_ROOT, logits_on_thread_counts, shared_path

CONFIGS = {"AASIST": "AASIST.conf", "AASIST-L": "AASIST-L.conf"}


def model_config(name: str) -> dict:
    return json.loads((REPO_ROOT / "config" / CONFIGS[name]).read_text())["model_config"]


def official_model(name: str) -> torch.nn.Module:
    model = models.build_model(model_config(name))
    models.load_weights(model, shared_path("weights", f"{name}.pth"))
    return model.eval()


@pytest.fixture(scope="module")
def parity():
    with np.load(shared_path("fixtures", "aasist_parity.npz")) as data:
        return {key: torch.from_numpy(data[key]) for key in data.files}


@pytest.mark.parametrize("name", ["AASIST", "AASIST-L"])
def test_matches_official_outputs(name, parity):
    """Scoring mode (eval + inference_mode, CPU: the fast chunked path) reproduces the reference to 1e-4."""
    model = official_model(name)
    with torch.inference_mode():
        embedding, logits = model(parity["inputs"])
    assert logits.shape == (5, 2) and embedding.shape == (5, 160)
    torch.testing.assert_close(logits, parity[f"{name}_logits"], rtol=0, atol=1e-4)
    torch.testing.assert_close(embedding, parity[f"{name}_embedding"], rtol=0, atol=1e-4)


def test_plain_path_matches_official_outputs(parity):
    """The implementation used for training/GPUs (fast path off) is the same function."""
    model = AASIST.set_fast_inference(official_model("AASIST"), False)
    with torch.no_grad():
        embedding, logits = model(parity["inputs"][:2])
    torch.testing.assert_close(logits, parity["AASIST_logits"][:2], rtol=0, atol=1e-4)
    torch.testing.assert_close(embedding, parity["AASIST_embedding"][:2], rtol=0, atol=1e-4)


def randomised_model(name: str = "AASIST-L") -> torch.nn.Module:
    """Random weights with non-trivial BatchNorm statistics, so BN folding is actually exercised."""
    torch.manual_seed(0)
    model = models.build_model(model_config(name))
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.mark.parametrize("n_samples", [7000, 11111])
def test_fast_path_equals_plain_path_at_chunk_edges(n_samples, monkeypatch):
    """Tiny chunks and lengths that are not multiples of the pooling: every chunk boundary and signal edge."""
    monkeypatch.setattr(AASIST, "CHUNK_ELEMENTS", 20000)  # a few frames per chunk
    model = randomised_model()
    waveform = torch.randn(2, n_samples) * 0.1
    with torch.no_grad():
        AASIST.set_fast_inference(model, False)
        plain_front = model.conv_time.pooled_magnitude(waveform)
        plain_encoded = model.encoder(AASIST.selu_(model.first_bn(plain_front)))
        plain_logits = model(waveform)[1]
        AASIST.set_fast_inference(model, True)
        fast_front = model.conv_time.pooled_magnitude(waveform)
        fast_encoded = model.encoder(AASIST.selu_(model.first_bn(fast_front)))
        fast_logits = model(waveform)[1]
    assert fast_front.shape == plain_front.shape == (2, 1, 23, (n_samples - 128) // 3)
    torch.testing.assert_close(fast_front, plain_front, rtol=1e-5, atol=1e-6)
    assert fast_encoded.shape == plain_encoded.shape
    scale = plain_encoded.abs().max()
    torch.testing.assert_close(fast_encoded / scale, plain_encoded / scale, rtol=0, atol=1e-5)
    torch.testing.assert_close(fast_logits, plain_logits, rtol=1e-4, atol=1e-4)


def test_fast_path_logits_do_not_depend_on_the_thread_count():
    """Scores are bit-identical however many threads compute them (a torchrun rank runs one thread, a single
    process several, and their score files must agree exactly). Neither ATen's exp2 and expm1 (their vector and
    scalar code paths differ in the last bit, and where a thread's range starts decides which an element takes) nor
    MKL's sgemm (other kernels for several threads, even for 23 x 24 products) is: a batch of one utterance hid
    the latter, a batch of two shows it."""
    model = randomised_model()
    waveform = torch.randn(2, 64600, generator=torch.Generator().manual_seed(3)) * 0.1
    logits = logits_on_thread_counts(model, waveform)
    assert torch.equal(logits[0], logits[1]) and torch.equal(logits[0], logits[2])


def test_encoder_without_pooling_fast_equals_plain():
    """The SSL_Anti-spoofing variant of the encoder (no pooling in the blocks), as AASIST_WAV2VEC uses it."""
    torch.manual_seed(1)
    encoder = AASIST.ResidualEncoder([[1, 32], [32, 32], [32, 64], [64, 64]], pool_size=None).eval()
    features = torch.randn(2, 1, 42, 67)
    with torch.no_grad():
        fast = encoder(features)
        plain = AASIST.set_fast_inference(encoder, False)(features)
    assert fast.shape == plain.shape == (2, 64, 42, 67)
    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-4)


def test_state_dict_keys_are_the_official_ones():
    model = models.build_model(model_config("AASIST"))
    official = models.load_state_dict(shared_path("weights", "AASIST.pth"))
    assert set(model.state_dict()) == set(official)
    assert not any("conv_time" in key for key in model.state_dict())  # fixed filters: a non-persistent buffer


def test_missing_or_extra_keys_are_refused_with_their_names():
    model = models.build_model(model_config("AASIST"))
    state = models.load_state_dict(shared_path("weights", "AASIST.pth"))
    missing = {k: v for k, v in state.items() if k != "GAT_layer_S.att_weight"}
    with pytest.raises(
        models.WeightLoadError, match=r"missing keys: GAT_layer_S\.att_weight; unexpected keys: none"
    ):
        models.load_weights(model, missing)
    extra = dict(state, **{"encoder.0.0.bn1.weight": torch.ones(1)})
    with pytest.raises(
        models.WeightLoadError, match=r"missing keys: none; unexpected keys: encoder\.0\.0\.bn1\.weight"
    ):
        models.load_weights(model, extra)
    # AASIST-L weights do not fit AASIST: a shape error, not a silent partial load
    with pytest.raises(
        models.WeightLoadError, match=r"shape mismatches: GAT_layer_S\.att_proj\.bias \(24,\) != \(64,\)"
    ):
        models.load_weights(model, shared_path("weights", "AASIST-L.pth"))


def test_training_step_with_frequency_augmentation():
    """Train mode, Freq_aug=True, batch of 2: the plain path runs, BN statistics update, gradients reach every
    used parameter and are finite."""
    torch.manual_seed(0)
    model = models.build_model(model_config("AASIST-L")).train()
    waveform = torch.randn(2, 16000) * 0.1
    embedding, logits = model(waveform, Freq_aug=True)
    assert embedding.shape == (2, 160) and logits.shape == (2, 2)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1]), weight=torch.tensor([0.1, 0.9]))
    loss.backward()
    unused = {name for name, _ in model.named_parameters() if ".bn1." in name}  # the reference never uses bn1
    for name, param in model.named_parameters():
        if name in unused:
            assert param.grad is None, name
        else:
            assert param.grad is not None and torch.isfinite(param.grad).all(), name
    assert model.encoder[0][0].bn2.num_batches_tracked.item() == 1
    assert model.first_bn.num_batches_tracked.item() == 1


def test_frequency_mask_zeroes_one_band_of_up_to_19_filters():
    sinc = AASIST.SincConv(70, 128)
    torch.manual_seed(0)
    widths = []
    for _ in range(200):
        zero_rows = (sinc.masked_filters()[:, 0].abs().sum(dim=1) == 0).nonzero().flatten()
        if len(zero_rows):
            assert (zero_rows.diff() == 1).all()  # one contiguous band
        widths.append(len(zero_rows))
    assert min(widths) == 0 and max(widths) == 19
    assert sinc.filters.abs().sum(dim=(1, 2)).min() > 0  # the buffer itself is never masked


def test_gradient_reaches_the_input_in_eval_mode():
    """Eval mode with autograd (e.g. attacks, saliency) must not take the no-grad fast path."""
    model = randomised_model()
    waveform = (torch.randn(1, 8000) * 0.1).requires_grad_()
    model(waveform)[1][0, 1].backward()
    assert waveform.grad is not None and waveform.grad.abs().sum() > 0


def test_bad_input_is_refused_clearly():
    model = models.build_model(model_config("AASIST-L")).eval()
    with pytest.raises(ValueError, match=r"waveform batch \(B, T\)"):
        model(torch.zeros(1, 1, 64600))
    with pytest.raises(ValueError, match="at least 2315 samples"):
        model(torch.zeros(1, 2000))
    with pytest.raises(KeyError, match="gat_dims"):
        models.build_model({k: v for k, v in model_config("AASIST").items() if k != "gat_dims"})


def test_graph_blocks_shapes_and_attention():
    """The public building blocks behave as documented (AMSDF reads the HS-GAL attention map)."""
    torch.manual_seed(0)
    layer = AASIST.HtrgGraphAttentionLayer(16, 8, temperature=2.0).eval()
    x1, x2 = torch.randn(3, 5, 16), torch.randn(3, 7, 16)
    out1, out2, master, attention = layer(x1, x2, master=torch.randn(3, 1, 16), return_attention=True)
    assert out1.shape == (3, 5, 8) and out2.shape == (3, 7, 8) and master.shape == (3, 1, 8)
    assert attention.shape == (3, 12, 12)
    torch.testing.assert_close(attention.sum(-1), torch.ones(3, 12))
    pooled = AASIST.GraphPool(0.5, 8, 0.3).eval()(out2)
    assert pooled.shape == (3, 3, 8)
