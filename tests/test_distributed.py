"""distributed: torchrun-style DDP on CPU (two gloo processes): disjoint per-epoch shuffles, DDP training that
keeps the ranks in step, and sharded scoring gathered back into protocol order equal to one process's scores."""

import os
import socket
import time

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.multiprocessing as mp
from corpus import voice
from test_training_utils import TinyDetector
from torch.utils.data import DataLoader, Dataset, TensorDataset

import antispoof.training.distributed as dd
from antispoof.scoring import predict_logits
from models import load_weights

WORLD_SIZE = 2
N_FILES = 7  # not a multiple of the world size: shards differ in size, nothing may be padded or repeated
TRAIN_SIZE = 10
LENGTH = 1600
SPAWN_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class IndexDataset(Dataset):
    def __len__(self):
        return TRAIN_SIZE

    def __getitem__(self, index):
        return index


def train_waves():
    generator = torch.Generator().manual_seed(7)
    return TensorDataset(torch.randn(TRAIN_SIZE, LENGTH, generator=generator), torch.arange(TRAIN_SIZE) % 2)


def _worker(rank: int, port: int, folder: str, paths: list) -> None:
    """One torchrun process: the variables torchrun sets, then the helpers as main.py would use them."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(WORLD_SIZE),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    info = dd.init_distributed("cpu")
    try:
        assert (info.rank, info.world_size, info.local_rank, info.is_main) == (
            rank,
            WORLD_SIZE,
            rank,
            rank == 0,
        )
        assert info.distributed and info.device == torch.device("cpu")
        assert torch.distributed.get_backend() == "gloo"

        # each rank's share of two epochs of the shuffled training set
        seen = {
            e: [int(i) for i in dd.make_train_loader(IndexDataset(), 1, seed=3, epoch=e, info=info)]
            for e in (0, 1)
        }

        # one epoch of DDP training: gradients are averaged, so the ranks end with identical weights
        torch.manual_seed(rank)  # different initial weights: DDP must broadcast rank 0's
        model = dd.wrap_model(TinyDetector(), info)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        losses = []
        for waves, labels in dd.make_train_loader(train_waves(), 2, seed=3, epoch=0, info=info):
            _, logits = model(waves)
            loss = torch.nn.functional.cross_entropy(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        stats_before = dd.all_gather_objects(dd.unwrap_model(model).bn.running_mean.clone(), info)
        dd.broadcast_buffers(model, info)
        weights = dd.all_gather_objects(dd.unwrap_model(model).state_dict(), info)
        mean_loss = dd.all_reduce_mean(float(np.mean(losses)), info)

        # sharded scoring with the unwrapped model, gathered into file order
        plain = dd.unwrap_model(model)
        indices = dd.sharded_indices(len(paths), info.rank, info.world_size)
        local = predict_logits(plain, [paths[i] for i in indices], nb_samp=LENGTH, batch_size=2)
        gathered = dd.gather_scores(indices, local, len(paths), info)
        dd.barrier(info)
        out = {
            "seen": seen,
            "gathered": gathered,
            "weights": weights,
            "mean_loss": mean_loss,
            "losses": losses,
            "indices": indices,
            "stats_before": stats_before,
        }
        torch.save(out, os.path.join(folder, f"rank{rank}.pt"))
    finally:
        dd.cleanup()


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    rng = np.random.default_rng(11)
    paths = []
    for i in range(N_FILES):
        path = folder / f"trial{i}.flac"
        sf.write(path, voice(rng, rng.uniform(0.05, 0.15), spoof=i % 3 == 0), 16000)
        paths.append(str(path))
    context = mp.spawn(_worker, args=(free_port(), str(folder), paths), nprocs=WORLD_SIZE, join=False)
    deadline = time.monotonic() + SPAWN_TIMEOUT_S
    while not context.join(timeout=1):  # raises with the worker's traceback if one fails
        if time.monotonic() > deadline:
            for process in context.processes:
                process.terminate()
            pytest.fail(f"the {WORLD_SIZE} DDP workers did not finish within {SPAWN_TIMEOUT_S} s (a hang?)")
    results = [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(WORLD_SIZE)]
    return results, paths


def test_each_epoch_is_split_disjointly_and_reshuffled(ddp_run):
    results, _ = ddp_run
    for epoch in (0, 1):
        shares = [r["seen"][epoch] for r in results]
        assert len(shares[0]) == len(shares[1]) == TRAIN_SIZE // WORLD_SIZE
        assert sorted(shares[0] + shares[1]) == list(range(TRAIN_SIZE))
    assert results[0]["seen"][0] != results[0]["seen"][1]


def test_ddp_training_keeps_the_ranks_identical(ddp_run):
    results, _ = ddp_run
    # parameters agree by DDP's design; BatchNorm statistics only once rank 0's are broadcast
    assert not torch.allclose(*results[0]["stats_before"])
    rank0_weights, rank1_weights = results[0]["weights"]
    for key in rank0_weights:
        torch.testing.assert_close(rank0_weights[key], rank1_weights[key])
    assert results[0]["mean_loss"] == pytest.approx(results[1]["mean_loss"])
    assert results[0]["mean_loss"] == pytest.approx(np.mean([np.mean(r["losses"]) for r in results]))


def test_gathered_scores_equal_one_process_in_protocol_order(ddp_run):
    results, paths = ddp_run
    assert len(results[0]["indices"]) + len(results[1]["indices"]) == N_FILES
    model = load_weights(TinyDetector(), results[0]["weights"][0])
    single = predict_logits(model, paths, nb_samp=LENGTH, batch_size=3)
    for result in results:  # every rank holds the complete array
        assert result["gathered"].shape == (N_FILES, 2) and result["gathered"].dtype == np.float32
        np.testing.assert_allclose(result["gathered"], single, rtol=1e-5, atol=1e-6)


def test_single_process_is_a_no_op(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    info = dd.init_distributed("cpu")
    assert (info.rank, info.world_size, info.is_main, info.distributed) == (0, 1, True, False)
    assert not torch.distributed.is_initialized()
    model = TinyDetector()
    assert dd.wrap_model(model, info) is model and dd.unwrap_model(model) is model
    assert dd.all_reduce_mean(2.5, info) == 2.5
    dd.cleanup()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(RuntimeError, match="WORLD_SIZE='two' is not an integer"):
        dd.init_distributed("cpu")


def test_single_process_loader_is_the_plain_seeded_shuffle():
    """One process gives exactly main.py's DataLoader(shuffle=True, generator=seed*1000+epoch) batches."""
    info = dd.DistInfo()
    dataset = train_waves()
    for epoch in (0, 3):
        ours = [waves for waves, _ in dd.make_train_loader(dataset, 3, seed=5, epoch=epoch, info=info)]
        plain = DataLoader(
            dataset,
            batch_size=3,
            shuffle=True,
            drop_last=True,
            generator=torch.Generator().manual_seed(5 * 1000 + epoch),
        )
        assert len(ours) == TRAIN_SIZE // 3
        torch.testing.assert_close(torch.cat(ours), torch.cat([waves for waves, _ in plain]), rtol=0, atol=0)
        assert isinstance(dd.train_sampler(IndexDataset(), 5, epoch, info), torch.utils.data.RandomSampler)
    # the shuffles differ between epochs and their indices are the dataset's
    first = [int(i) for i in dd.make_train_loader(IndexDataset(), 1, 5, 0, info)]
    assert sorted(first) == list(range(TRAIN_SIZE))
    assert first != [int(i) for i in dd.make_train_loader(IndexDataset(), 1, 5, 1, info)]


@pytest.mark.parametrize("n, world", [(7, 2), (10, 3), (2, 4), (0, 2), (64, 1)])
def test_shards_cover_every_index_once_in_order(n, world):
    shards = [dd.sharded_indices(n, r, world) for r in range(world)]
    assert np.concatenate(shards).tolist() == list(range(n))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    with pytest.raises(ValueError, match="not in a world"):
        dd.sharded_indices(n, world, world)


def test_gather_refuses_incomplete_or_repeated_coverage():
    info = dd.DistInfo()
    logits = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.testing.assert_array_equal(dd.gather_scores([2, 0, 1], logits, 3, info), logits[[1, 2, 0]])
    np.testing.assert_array_equal(dd.gather_scores([0, 1, 2], torch.from_numpy(logits), 3, info), logits)
    with pytest.raises(ValueError, match="1 missing"):
        dd.gather_scores([0, 1], logits[:2], 3, info)
    with pytest.raises(ValueError, match="1 repeated"):
        dd.gather_scores([0, 1, 1], logits, 3, info)
    with pytest.raises(ValueError, match="3 indices but logits of shape"):
        dd.gather_scores([0, 1, 2], logits[:2], 3, info)
