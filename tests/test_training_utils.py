"""training_utils: mixed precision, checkpoint averaging (top-k, SWA with BatchNorm re-estimation), atomic and
fall-back checkpoints, RNG state for resume, early stopping; and the CPU smoke run of bench/train_gpu.py."""

import json
import math
import random
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from corpus import AASIST_L_TINY, voice
from torch import nn
from torch.optim.swa_utils import update_bn
from torch.utils.data import DataLoader, TensorDataset

import antispoof.runtime as runtime
from antispoof.scoring import predict_logits
from antispoof.training import averaging, checkpoints, early_stopping, optim
from models import build_model, freeze, load_weights
from models.AASIST import set_fast_inference

REPO = Path(__file__).resolve().parents[1]
FRAME = 160


class TinyDetector(nn.Module):
    """A waveform detector with the project's interface: 160-sample frames -> Linear -> BatchNorm -> mean -> 2
    logits; ``with_frozen`` adds a frozen BatchNorm'd branch, like the frozen parts of the fusion models."""

    def __init__(self, with_frozen: bool = False):
        super().__init__()
        self.frame_proj = nn.Linear(FRAME, 8)
        self.bn = nn.BatchNorm1d(8)
        self.head = nn.Linear(8, 2)
        self.frozen = freeze(nn.Sequential(nn.Linear(FRAME, 8), nn.BatchNorm1d(8))) if with_frozen else None

    def frames(self, x):
        return x[:, : x.shape[1] // FRAME * FRAME].reshape(-1, FRAME)

    def forward(self, x, Freq_aug=False):
        frames = self.frames(x)
        hidden = self.bn(self.frame_proj(frames))
        if self.frozen is not None:
            hidden = hidden + self.frozen(frames)
        embedding = hidden.reshape(x.shape[0], -1, 8).mean(dim=1)
        return embedding, self.head(embedding)


def waveform_loader(n=12, batch=4, length=1600, seed=0):
    """Batches of (waveform, label) tuples, as main.py's training loader yields."""
    generator = torch.Generator().manual_seed(seed)
    waves = torch.randn(n, length, generator=generator) * torch.linspace(0.5, 2, n)[:, None] + 0.3
    labels = torch.arange(n) % 2
    return DataLoader(TensorDataset(waves, labels), batch_size=batch, shuffle=False)


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(5)
    paths = []
    for i in range(3):
        path = folder / f"utt{i}.flac"
        sf.write(path, voice(rng, 1.1, spoof=i == 1), 16000)
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------------------------------
# mixed precision
# ---------------------------------------------------------------------------------------------------------------
def test_precision_names_are_checked():
    assert runtime.check_precision(None, "cpu") == "fp32"
    assert runtime.check_precision("BFloat16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="not one of fp32, bf16, fp16"):
        runtime.check_precision("fp8", "cpu")
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        runtime.autocast_context("cpu", "fp16")


def test_autocast_context_sets_the_compute_dtype_and_fp32_is_untouched():
    layer = nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with runtime.autocast_context("cpu", "fp32"):
        assert layer(x).dtype == torch.float32
        assert not torch.is_autocast_enabled("cpu")
    with runtime.autocast_context(torch.device("cpu"), "bf16"):
        assert layer(x).dtype == torch.bfloat16


def test_grad_scaler_is_a_pass_through_off_cuda_fp16():
    """A disabled scaler makes optimizer_step an ordinary Adam step (the CPU path and the fp32/bf16 CUDA path)."""
    for precision in ("fp32", "bf16"):
        assert not runtime.make_grad_scaler(precision, "cpu").is_enabled()
    torch.manual_seed(0)
    model, reference = nn.Linear(4, 2), nn.Linear(4, 2)
    reference.load_state_dict(model.state_dict())
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    opt, ref_opt = torch.optim.Adam(model.parameters(), 1e-2), torch.optim.Adam(reference.parameters(), 1e-2)
    optim.optimizer_step(
        nn.functional.cross_entropy(model(x), y), opt, runtime.make_grad_scaler("fp32", "cpu")
    )
    ref_opt.zero_grad()
    nn.functional.cross_entropy(reference(x), y).backward()
    ref_opt.step()
    for a, b in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b)


def test_optimizer_step_clips_gradients():
    model = nn.Linear(4, 1, bias=False)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    before = model.weight.detach().clone()
    loss = (model(torch.full((1, 4), 100.0)) ** 2).sum()
    optim.optimizer_step(loss, opt, runtime.make_grad_scaler("fp32", "cpu"), max_grad_norm=0.5)
    assert torch.linalg.norm(model.weight - before).item() == pytest.approx(0.5, rel=1e-5)


def test_aasist_trains_and_scores_under_bf16_autocast():
    """A real model through one bf16 training step; its scores, cast to float32, stay close to fp32 ones."""
    torch.manual_seed(0)
    model = build_model(AASIST_L_TINY)
    x, y = torch.randn(2, 8000) * 0.1, torch.tensor([0, 1])
    optimizer = torch.optim.Adam(model.parameters(), 1e-4)
    model.train()
    with runtime.autocast_context("cpu", "bf16"):
        _, logits = model(x)
    assert logits.dtype == torch.bfloat16
    loss = nn.functional.cross_entropy(logits.float(), y)
    optim.optimizer_step(loss, optimizer, runtime.make_grad_scaler("bf16", "cpu"))
    assert all(torch.isfinite(p).all() for p in model.parameters())
    model.eval()
    set_fast_inference(model, False)  # AASIST's chunked CPU inference path is float32-only
    with torch.no_grad():
        _, fp32 = model(x)
        with runtime.autocast_context("cpu", "bf16"):
            _, bf16 = model(x)
    assert fp32.dtype == torch.float32
    torch.testing.assert_close(bf16.float(), fp32, atol=0.1, rtol=0.1)


# ---------------------------------------------------------------------------------------------------------------
# checkpoint averaging
# ---------------------------------------------------------------------------------------------------------------
def test_average_state_dicts_means_floats_and_keeps_the_last_integers():
    states = []
    for i in range(3):
        model = TinyDetector()
        nn.init.constant_(model.head.weight, float(i))
        model.bn.num_batches_tracked.fill_(10 * i)
        states.append(model.state_dict())
    averaged = averaging.average_state_dicts(states)
    torch.testing.assert_close(averaged["head.weight"], torch.full((2, 8), 1.0))
    torch.testing.assert_close(averaged["bn.running_var"], states[0]["bn.running_var"])
    assert averaged["bn.num_batches_tracked"].item() == 20
    assert averaged["bn.num_batches_tracked"].dtype == torch.long
    expected = (
        states[0]["frame_proj.bias"] + states[1]["frame_proj.bias"] + states[2]["frame_proj.bias"]
    ) / 3
    torch.testing.assert_close(averaged["frame_proj.bias"], expected)
    with pytest.raises(ValueError, match="other keys"):
        averaging.average_state_dicts([states[0], TinyDetector(with_frozen=True).state_dict()])
    with pytest.raises(ValueError, match="no state dicts"):
        averaging.average_state_dicts([])


def test_top_k_average_picks_the_lowest_dev_eer_and_the_result_loads_and_scores(tmp_path, audio_files):
    entries, states = [], []
    for epoch, eer in enumerate([9.0, 2.0, float("nan"), 4.0, 7.5]):
        torch.manual_seed(epoch)
        state = build_model(AASIST_L_TINY).state_dict()
        path = tmp_path / f"epoch{epoch}.pth"
        # one of them as a resume checkpoint, whose "model" entry holds the weights
        checkpoints.save_checkpoint_atomically(
            {"model": state, "epoch": epoch} if epoch == 3 else state, path
        )
        entries.append((path, eer))
        states.append(state)
    averaged, chosen = averaging.top_k_average(entries, k=2)
    assert chosen == [(tmp_path / "epoch1.pth", 2.0), (tmp_path / "epoch3.pth", 4.0)]
    key = "out_layer.weight"
    torch.testing.assert_close(averaged[key], (states[1][key] + states[3][key]) / 2)
    model = load_weights(build_model(AASIST_L_TINY), averaged)
    logits = predict_logits(model, audio_files, nb_samp=16000, batch_size=3)
    assert logits.shape == (3, 2) and np.isfinite(logits).all()
    with pytest.raises(ValueError, match="k >= 1"):
        averaging.top_k_average(entries, k=0)


def test_update_bn_waveforms_matches_torch_update_bn_on_waveform_batches():
    torch.manual_seed(0)
    ours = TinyDetector()
    theirs = TinyDetector()
    theirs.load_state_dict(ours.state_dict())
    loader = waveform_loader()
    ours.eval()
    assert averaging.update_bn_waveforms(loader, ours, "cpu") == 3
    update_bn([waves for waves, _ in loader], theirs)  # torch's own, fed the waveforms only
    for key in ("bn.running_mean", "bn.running_var", "bn.num_batches_tracked"):
        torch.testing.assert_close(ours.state_dict()[key], theirs.state_dict()[key])
    # the statistics are those of all BatchNorm inputs of the loader (equal batch sizes: the cumulative mean)
    with torch.no_grad():
        features = torch.cat([ours.frame_proj(ours.frames(waves)) for waves, _ in loader])
    torch.testing.assert_close(ours.bn.running_mean, features.mean(0), atol=1e-5, rtol=1e-5)
    assert ours.bn.momentum == 0.1 and not ours.training


def test_update_bn_waveforms_leaves_frozen_batchnorm_alone():
    torch.manual_seed(1)
    model = TinyDetector(with_frozen=True)
    frozen_bn = model.frozen[1]
    frozen_bn.running_mean.fill_(0.25)
    frozen_before = {k: v.clone() for k, v in frozen_bn.state_dict().items()}
    trainable_before = model.bn.running_mean.clone()
    averaging.update_bn_waveforms(waveform_loader(), model, "cpu")
    for key, value in frozen_bn.state_dict().items():
        torch.testing.assert_close(value, frozen_before[key])
    assert not torch.allclose(model.bn.running_mean, trainable_before)


def test_swa_averages_epochs_and_its_state_dict_loads_strictly(audio_files):
    torch.manual_seed(2)
    model = TinyDetector(with_frozen=True)
    swa = averaging.make_swa_model(model)
    snapshots = []
    for epoch in range(3):  # stand-ins for the weights at the end of the last epochs
        with torch.no_grad():
            model.head.weight.add_(float(epoch + 1))
        swa.update_parameters(model)
        snapshots.append(model.head.weight.detach().clone())
    torch.testing.assert_close(swa.module.head.weight, torch.stack(snapshots).mean(0))
    averaging.update_bn_waveforms(waveform_loader(), swa, "cpu")
    state = averaging.swa_state_dict(swa)
    assert "n_averaged" not in state and not any(k.startswith("module.") for k in state)
    plain = load_weights(TinyDetector(with_frozen=True), state)
    plain.eval()
    swa.eval()
    x = torch.randn(3, 1600)
    with torch.no_grad():
        torch.testing.assert_close(plain(x)[1], swa(x)[1])
    assert np.isfinite(predict_logits(plain, audio_files, nb_samp=1600, batch_size=3)).all()


def test_swa_of_aasist_with_bn_update_loads_and_scores(audio_files):
    """The real model: AveragedModel -> BatchNorm re-estimated on (waveform, label) batches -> strict load."""
    torch.manual_seed(3)
    model = build_model(AASIST_L_TINY)
    swa = averaging.make_swa_model(model)
    swa.update_parameters(model)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.9)
    swa.update_parameters(model)
    assert swa.n_averaged.item() == 2
    loader = waveform_loader(n=4, batch=2, length=8000)
    averaging.update_bn_waveforms(loader, swa, "cpu", max_batches=1)
    for name in ("first_bn", "encoder.0.0.bn2", "GAT_layer_S.bn"):  # re-estimated from that one batch
        assert swa.module.get_submodule(name).num_batches_tracked.item() == 1, name
    scored = load_weights(build_model(AASIST_L_TINY), averaging.swa_state_dict(swa))
    logits = predict_logits(scored, audio_files, nb_samp=16000, batch_size=3)
    assert logits.shape == (3, 2) and np.isfinite(logits).all()


# ---------------------------------------------------------------------------------------------------------------
# robust checkpoints
# ---------------------------------------------------------------------------------------------------------------
def test_atomic_save_replaces_whole_files_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "sub" / "state.pth"
    checkpoints.save_checkpoint_atomically({"epoch": 1, "w": torch.ones(3)}, path)
    checkpoints.save_checkpoint_atomically({"epoch": 2, "w": torch.zeros(3)}, path)
    assert torch.load(path, weights_only=True)["epoch"] == 2

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle this")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        checkpoints.save_checkpoint_atomically({"epoch": 3, "bad": Unpicklable()}, path)
    assert torch.load(path, weights_only=True)["epoch"] == 2  # the previous file is intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.pth"]


def test_truncated_checkpoint_falls_back_to_the_previous_good_one(tmp_path):
    for epoch in range(3):
        checkpoints.save_checkpoint_atomically(
            {"epoch": epoch, "w": torch.full((64,), float(epoch))},
            checkpoints.epoch_checkpoint_path(tmp_path, epoch),
        )
    newest = checkpoints.epoch_checkpoints_newest_first(tmp_path)
    assert [p.name for p in newest] == ["state_epoch002.pth", "state_epoch001.pth", "state_epoch000.pth"]
    data = newest[0].read_bytes()
    newest[0].write_bytes(data[: len(data) // 2])  # a half-written file (e.g. copied while being written)
    with pytest.warns(UserWarning, match="state_epoch002.pth: unreadable checkpoint"):
        path, state = checkpoints.load_latest_good_checkpoint(newest)
    assert path == newest[1] and state["epoch"] == 1


def test_no_checkpoint_is_none_and_only_corrupt_ones_is_an_error(tmp_path):
    assert checkpoints.load_latest_good_checkpoint([tmp_path / "missing.pth"]) is None
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(checkpoints.CheckpointError, match="garbage.pth"):
            checkpoints.load_latest_good_checkpoint([tmp_path / "missing.pth", tmp_path / "garbage.pth"])


def test_prune_keeps_the_newest_and_protected_checkpoints(tmp_path):
    for epoch in range(5):
        checkpoints.save_checkpoint_atomically(
            {"epoch": epoch}, checkpoints.epoch_checkpoint_path(tmp_path, epoch)
        )
    (tmp_path / "state_epochX.pth").write_text("not an epoch file")
    removed = checkpoints.prune_epoch_checkpoints(
        tmp_path, keep=2, protect=[checkpoints.epoch_checkpoint_path(tmp_path, 0)]
    )
    assert sorted(p.name for p in removed) == ["state_epoch001.pth", "state_epoch002.pth"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "state_epoch000.pth",
        "state_epoch003.pth",
        "state_epoch004.pth",
        "state_epochX.pth",
    ]


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    random.seed(4)
    np.random.seed(4)
    torch.manual_seed(4)
    np.random.normal()  # a cached Gaussian in NumPy's legacy state
    path = checkpoints.save_checkpoint_atomically(
        {"rng": checkpoints.capture_rng_state()}, tmp_path / "rng.pth"
    )
    expected = (random.random(), np.random.normal(), np.random.rand(), torch.rand(3))
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    checkpoints.restore_rng_state(torch.load(path, weights_only=True)["rng"])
    got = (random.random(), np.random.normal(), np.random.rand(), torch.rand(3))
    assert got[:3] == expected[:3]
    torch.testing.assert_close(got[3], expected[3])


# ---------------------------------------------------------------------------------------------------------------
# early stopping
# ---------------------------------------------------------------------------------------------------------------
def test_early_stopping_counts_epochs_without_improvement():
    stopper = early_stopping.EarlyStopping(patience=2)
    decisions = []
    for eer in [5.0, 4.0, 4.0, float("nan"), 3.0, 3.5, 3.2]:
        improved = stopper.update(eer)
        decisions.append((improved, stopper.should_stop))
    assert decisions == [
        (True, False),
        (True, False),
        (False, False),
        (False, True),
        (True, False),
        (False, False),
        (False, True),
    ]
    assert stopper.best == 3.0 and stopper.best_step == 4
    never = early_stopping.EarlyStopping(patience=None)
    for _ in range(50):
        never.update(1.0)
    assert not never.should_stop
    with pytest.raises(ValueError, match="patience must be >= 1"):
        early_stopping.EarlyStopping(patience=0)


def test_early_stopping_state_survives_a_resume(tmp_path):
    values = [5.0, 4.0, 4.5, 4.6, 3.9, 4.2, 4.4, 4.3]
    uninterrupted = early_stopping.EarlyStopping(patience=3, mode="min", min_delta=0.05)
    for v in values:
        uninterrupted.update(v)
    first = early_stopping.EarlyStopping(patience=3, min_delta=0.05)
    for v in values[:4]:
        first.update(v)
    path = checkpoints.save_checkpoint_atomically({"early_stopping": first.state_dict()}, tmp_path / "s.pth")
    resumed = early_stopping.EarlyStopping(patience=3, min_delta=0.05)
    resumed.load_state_dict(torch.load(path, weights_only=True)["early_stopping"])
    for v in values[4:]:
        resumed.update(v)
    assert resumed.state_dict() == uninterrupted.state_dict()
    assert resumed.should_stop and uninterrupted.should_stop
    maximise = early_stopping.EarlyStopping(patience=1, mode="max")
    assert maximise.update(0.5) and not maximise.update(0.4) and maximise.should_stop
    with pytest.raises(ValueError, match="mode"):
        maximise.load_state_dict(resumed.state_dict())
    assert math.isinf(early_stopping.EarlyStopping(patience=1).best)


# ---------------------------------------------------------------------------------------------------------------
# bench/train_gpu.py
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    import train_gpu

    yield train_gpu
    sys.modules.pop("train_gpu", None)


def test_gpu_bench_says_so_without_cuda(bench, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench.main(["--json", str(tmp_path / "b.json")]) == 1
    assert "CUDA is not available" in capsys.readouterr().out
    assert not (tmp_path / "b.json").exists()


def test_gpu_bench_cpu_smoke_reads_real_files_and_writes_its_table(bench, capsys, tmp_path, monkeypatch):
    """The CPU smoke path end to end (tiny: AASIST-L, 8000-sample crops, two steps, two DataLoader workers)."""
    out = tmp_path / "bench.json"
    monkeypatch.chdir(tmp_path)  # nothing but the asked-for JSON may appear in the working directory
    threads = torch.get_num_threads()
    try:
        code = bench.main(
            [
                "--cpu-smoke",
                "--models",
                "AASIST-L",
                "--precisions",
                "fp32",
                "--nb_samp",
                "8000",
                "--json",
                str(out),
            ]
        )
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json"]
    result = json.loads(out.read_text())
    assert result["cpu_smoke"] and result["device_type"] == "cpu"
    (row,) = result["results"]
    assert row["model"] == "AASIST-L" and row["precision"] == "fp32" and row["nb_samp"] == 8000
    for key in ("train_utt_per_s", "train_compute_utt_per_s", "score_utt_per_s"):
        assert row[key] > 0
    for key in ("train_data_wait_fraction", "score_data_wait_fraction"):
        assert 0 <= row[key] < 1
    table = capsys.readouterr().out
    assert "train utt/s" in table and "AASIST-L" in table
