"""Train and evaluate a detector on ASVspoof 2019 LA, and evaluate it on DSES per emotion and per TTS system.

    python main.py --config config/AASIST.conf            # train, select on dev, score eval (and DSES)
    python main.py --eval --config config/AASIST.conf     # score eval (and DSES) with model_path
    python main.py --config config/SER.conf               # train the ACRNN emotion recogniser on ESD
    torchrun --nproc_per_node 4 main.py --config ...      # the same on several GPUs (PyTorch DDP)

Results go to ``exp_result/<tag>/``: the config copy, ``weights/``, dev and eval score files (official format),
the EER / t-DCF report, the DSES tables and ``metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

import evaluation
from antispoof.config import read_config
from antispoof.data import (
    EMOTIONS,
    NB_SAMP,
    ProtocolError,
    TrainDataset,
    Trial,
    asvspoof_trials,
    check_audio_exists,
    scan_dses,
    write_dses_protocol,
)
from antispoof.fileio import write_text_atomically
from antispoof.runtime import autocast_context, check_precision, make_grad_scaler
from antispoof.scoring import load_model_for_scoring, predict_logits
from antispoof.training.distributed import (
    DistInfo,
    all_gather_objects,
    all_reduce_mean,
    barrier,
    broadcast_buffers,
    cleanup,
    gather_scores,
    init_distributed,
    make_train_loader,
    sharded_indices,
    unwrap_model,
    wrap_model,
)
from antispoof.training.utils import (
    CheckpointError,
    EarlyStopping,
    capture_rng_state,
    epoch_checkpoint_path,
    epoch_checkpoints_newest_first,
    load_latest_good_checkpoint,
    make_swa_model,
    optimizer_step,
    prune_epoch_checkpoints,
    restore_rng_state,
    save_checkpoint_atomically,
    select_top_k,
    swa_state_dict,
    top_k_average,
    update_bn_waveforms,
)
from models import ConfigError, WeightLoadError, build_model, load_weights

ASV_SCORES_DIR = "ASVspoof2019_LA_asv_scores"
ASV_DEV_SCORES = "ASVspoof2019.LA.asv.dev.gi.trl.scores.txt"
ASV_EVAL_SCORES = "ASVspoof2019.LA.asv.eval.gi.trl.scores.txt"
CLASS_WEIGHTS = (0.1, 0.9)  # (spoof, bona fide), as in AASIST


# ----------------------------------------------------------------------------------------------------
# set-up
# ----------------------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="JSON experiment config (config/*.conf)")
    p.add_argument("--eval", action="store_true", help="only score eval (and DSES) with model_path")
    p.add_argument("--database_path", help="ASVspoof 2019 LA root (overrides the config)")
    p.add_argument("--emo_dataset", help="DSES root (overrides the config's emo_dataset)")
    p.add_argument("--output_dir", default="./exp_result", help="where experiment folders go")
    p.add_argument("--seed", type=int, help="random seed (overrides the config; default 1234)")
    p.add_argument("--comment", help="suffix for the experiment folder name")
    p.add_argument("--eval_model_weights", help="weights to evaluate instead of model_path")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA if present, else CPU)")
    p.add_argument("--num_epochs", type=int, help="overrides the config")
    p.add_argument("--batch_size", type=int, help="per process (overrides the config)")
    p.add_argument("--num_workers", type=int, help="DataLoader workers (overrides the config)")
    p.add_argument(
        "--precision", choices=("fp32", "bf16", "fp16"), help="overrides the config (default fp32)"
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the experiment folder's last completed epoch"
    )
    return p.parse_args(argv)


def load_config(args: argparse.Namespace) -> dict:
    config = read_config(args.config)
    for key in (
        "database_path",
        "emo_dataset",
        "seed",
        "num_epochs",
        "batch_size",
        "num_workers",
        "precision",
    ):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    config.setdefault("seed", 1234)
    config.setdefault("num_workers", 0)
    return config


def require(config: dict, *keys: str):
    for key in keys:
        if key not in config:
            raise SystemExit(f"error: the config has no {key!r} (see config/AASIST.conf for the layout)")


def set_seed(seed: int, config: dict) -> None:
    """Seed every generator; cuDNN as the config asks (CPU runs repeat exactly for a fixed seed)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
        torch.backends.cudnn.deterministic = (
            str(config.get("cudnn_deterministic_toggle", True)).lower() == "true"
        )
        torch.backends.cudnn.benchmark = str(config.get("cudnn_benchmark_toggle", False)).lower() == "true"


def experiment_dir(config: dict, args: argparse.Namespace) -> Path:
    name = Path(args.config).stem
    tag = (
        f"{config.get('track', 'LA')}_{name}_ep{config.get('num_epochs', 0)}_bs{config.get('batch_size', 0)}"
    )
    if args.comment:
        tag += f"_{args.comment}"
    if args.eval:
        tag += "_eval"
    return Path(args.output_dir) / tag


def write_json(path: Path, obj) -> None:
    write_text_atomically(path, json.dumps(obj, indent=2, default=float) + "\n")


@dataclass
class Run:
    """One process's view of an experiment: config, folder, and where it stands among torchrun's processes."""

    config: dict
    args: argparse.Namespace
    info: DistInfo
    out_dir: Path
    precision: str = "fp32"

    @property
    def device(self) -> torch.device:
        return self.info.device

    @property
    def is_main(self) -> bool:
        return self.info.is_main

    def log(self, message: str) -> None:
        if self.is_main:
            tqdm.write(message)

    def on_main(self, fn: Callable, *args, **kwargs):
        """Run ``fn`` on rank 0 only and hand its result to every rank (files are written once)."""
        result = fn(*args, **kwargs) if self.is_main else None
        return all_gather_objects(result, self.info)[0]


# ----------------------------------------------------------------------------------------------------
# evaluation
# ----------------------------------------------------------------------------------------------------
def score_trials(model: nn.Module, trials: list[Trial], run: Run, desc: str) -> np.ndarray:
    """(N, classes) logits for ``trials`` in order; each process scores its share, then they are gathered."""
    indices = sharded_indices(len(trials), run.info.rank, run.info.world_size)
    local = predict_logits(
        unwrap_model(model),
        [trials[i].path for i in indices],
        nb_samp=run.config["model_config"].get("nb_samp", NB_SAMP),
        batch_size=run.config.get("eval_batch_size", run.config.get("batch_size", 8)),
        device=run.device,
        num_workers=run.config.get("num_workers", 0),
        desc=desc,
        precision=run.precision,
        progress=run.is_main,
    )
    return gather_scores(indices, local, len(trials), run.info)


def write_and_check_scores(path: Path, trials: list[Trial], scores: np.ndarray) -> None:
    """Write the official score file, read it back and check it against the protocol it came from."""
    evaluation.write_score_file(path, [(t.utt_id, t.system, t.key, float(s)) for t, s in zip(trials, scores)])
    evaluation.check_scores_against_protocol(
        evaluation.read_score_file(path), [(t.speaker, t.utt_id, t.system, t.key) for t in trials], path
    )


def asv_scores_path(config: dict, split: str) -> Path | None:
    """The organisers' ASV scores for the t-DCF (eval: the config's asv_score_path; dev: the same folder)."""
    eval_path = Path(config["database_path"]) / config.get(
        "asv_score_path", f"{ASV_SCORES_DIR}/{ASV_EVAL_SCORES}"
    )
    path = eval_path if split == "eval" else eval_path.with_name(ASV_DEV_SCORES)
    return path if path.is_file() else None


def evaluate_la_split(model, trials: list[Trial], run: Run, split: str, tag: str = "") -> dict:
    """Score a split, write and check its score file, return EER / min t-DCF / per-attack EER."""
    scores = score_trials(model, trials, run, desc=f"scoring {split}")[:, 1]

    def write_and_measure():
        score_path = run.out_dir / f"{split}_scores{tag}.txt"
        write_and_check_scores(score_path, trials, scores)
        asv = asv_scores_path(run.config, split)
        if asv is None:
            print(f"note: no ASV scores for {split} in {run.config['database_path']}: EER only, no t-DCF")
        result = evaluation.evaluate_asvspoof2019(str(score_path), str(asv) if asv else None)
        result["score_file"] = str(score_path)
        return result

    return run.on_main(write_and_measure)


def dses_trials(run: Run) -> list[Trial] | None:
    root = run.config.get("emo_dataset")
    if not root:
        run.log("DSES: no emo_dataset in the config: the per-emotion evaluation is skipped")
        return None
    if not Path(root).is_dir():
        run.log(
            f"DSES: {root} not found: the per-emotion evaluation is skipped "
            "(python download_dataset.py --dataset emotional fetches it)"
        )
        return None
    trials, report = scan_dses(root)
    run.log(report.summary())
    check_audio_exists(trials, f"DSES ({root})")
    if run.is_main:
        (run.out_dir / "dses").mkdir(parents=True, exist_ok=True)
        write_dses_protocol(trials, run.out_dir / "dses" / "dses_protocol.tsv", root)
    return trials


def evaluate_dses(model, trials: list[Trial], run: Run, out_dir: Path, full: bool = True) -> dict:
    """EER per emotion / system / emotion x system and pooled, with speaker-bootstrap CIs, tables, DET plots."""
    scores = score_trials(model, trials, run, desc="scoring DSES")[:, 1]

    def report():
        out_dir.mkdir(parents=True, exist_ok=True)
        write_and_check_scores(out_dir / "dses_scores.txt", trials, scores)
        entries = [
            {"utt_id": t.utt_id, "speaker": t.speaker, "emotion": t.emotion, "system": t.system, "key": t.key}
            for t in trials
        ]
        n_bootstrap = run.config.get("dses_bootstrap", 1000) if full else 0
        breakdown = evaluation.dses_breakdown(entries, scores, n_bootstrap=n_bootstrap)
        markdown = evaluation.format_dses_markdown(breakdown)
        write_text_atomically(out_dir / "dses_report.md", markdown + "\n")
        write_json(out_dir / "dses_metrics.json", breakdown)
        if full:
            evaluation.plot_det(entries, scores, out_dir / "det")
        return {"breakdown": breakdown, "markdown": markdown}

    return run.on_main(report)


def run_evaluation(model, run: Run, dses: list[Trial] | None) -> dict:
    """Score ASVspoof 2019 LA eval (where present) and the scanned DSES trials (if any) with a loaded model."""
    metrics: dict = {}
    database = run.config.get("database_path")
    trials = None
    if database:
        try:
            trials = asvspoof_trials(database, "eval")
        except ProtocolError as exc:
            run.log(f"ASVspoof 2019 LA eval skipped: {exc}")
    if trials is not None:
        check_audio_exists(trials, f"ASVspoof 2019 LA eval ({database})")
        result = evaluate_la_split(model, trials, run, "eval")
        if run.is_main:
            report = evaluation.format_asvspoof2019_report(result)
            write_text_atomically(run.out_dir / "t-DCF_EER.txt", report + "\n")
            print(report)
        metrics["eval"] = result
    if dses:
        result = evaluate_dses(model, dses, run, run.out_dir / "dses")
        run.log(result["markdown"])
        metrics["dses"] = result["breakdown"]
    if not metrics:
        raise SystemExit(
            "error: nothing to evaluate: neither ASVspoof 2019 LA eval nor a DSES folder was found"
        )
    return metrics


# ----------------------------------------------------------------------------------------------------
# training: one loop for every recipe
# ----------------------------------------------------------------------------------------------------
def make_optimizer(model: nn.Module, optim_config: dict, steps_total: int):
    """Adam and AASIST's per-step cosine annealing from base_lr to lr_min."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise SystemExit("error: the model has no trainable parameters")
    name = optim_config.get("optimizer", "adam").lower()
    if name != "adam":
        raise SystemExit(f"error: optim_config.optimizer {name!r} is not supported (adam)")
    require(optim_config, "base_lr")
    base_lr = optim_config["base_lr"]
    optimizer = torch.optim.Adam(
        params,
        lr=base_lr,
        betas=tuple(optim_config.get("betas", (0.9, 0.999))),
        weight_decay=optim_config.get("weight_decay", 0.0),
        amsgrad=str(optim_config.get("amsgrad", False)).lower() == "true",
    )
    scheduler_name = optim_config.get("scheduler", "cosine")
    if scheduler_name == "cosine":
        floor = optim_config.get("lr_min", 0.0) / base_lr

        def cosine(step: int) -> float:
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * step / max(1, steps_total)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)
    elif scheduler_name in (None, "none", "constant"):
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    else:
        raise SystemExit(f"error: optim_config.scheduler {scheduler_name!r} is not supported (cosine, none)")
    return optimizer, scheduler


def make_augment(config: dict):
    """Waveform augmentation from the config (RawBoost), applied per training crop."""
    if not config.get("rawboost"):
        return None
    from antispoof.augment.rawboost import make_rawboost

    return make_rawboost(config["rawboost"])


@dataclass
class Validation:
    """What one epoch's validation gives: the selection value, a log line fragment, numbers for the history."""

    value: float
    line: str
    numbers: dict


def fit(
    model: nn.Module,
    train_set: TrainDataset,
    criterion: nn.Module,
    validate: Callable[[nn.Module, int], Validation],
    run: Run,
    mode: str = "min",
    freq_aug: bool = False,
) -> dict:
    """Train with per-epoch validation and model selection; returns the record of the selected model.

    Selection uses the validation value only (dev EER for detectors, never eval). Files in ``weights/``:
    ``best.pth`` (selected weights), ``weights_epochNNN.pth`` (kept for top-k averaging), ``state_epochNNN.pth``
    (everything needed to resume; the last two are kept, so a truncated newest one falls back to the previous).
    """
    config, info = run.config, run.info
    weights_dir = run.out_dir / "weights"
    if run.is_main:
        weights_dir.mkdir(parents=True, exist_ok=True)
    steps_per_epoch = len(train_set) // (config["batch_size"] * info.world_size)
    if steps_per_epoch == 0:
        raise SystemExit(
            f"error: {len(train_set)} training items are fewer than one batch of {config['batch_size']} per process"
        )
    optimizer, scheduler = make_optimizer(
        model, config["optim_config"], steps_per_epoch * config["num_epochs"]
    )
    scaler = make_grad_scaler(run.precision, run.device)
    stopper = EarlyStopping(config.get("early_stopping_patience"), mode=mode)
    averaging = config.get("averaging") or {}
    swa_epochs = int(averaging.get("swa_epochs", 0)) if averaging.get("method") == "swa" else 0
    swa_model = None
    history: list[dict] = []

    start_epoch = 0
    if run.args.resume:
        found = load_latest_good_checkpoint(epoch_checkpoints_newest_first(weights_dir))
        if found is None:
            raise SystemExit(f"error: --resume: no checkpoint in {weights_dir}")
        path, state = found
        load_weights(model, state["model"], what=str(path))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        stopper.load_state_dict(state["early_stopping"])
        history = json.loads(state["history"])
        if "swa" in state:
            swa_model = make_swa_model(model)
            swa_model.load_state_dict(state["swa"])
        restore_rng_state(state["rng"][min(info.rank, len(state["rng"]) - 1)])
        start_epoch = state["epoch"] + 1
        run.log(f"resumed from {path}: continuing at epoch {start_epoch}")
    elif run.is_main:
        stale = epoch_checkpoints_newest_first(weights_dir) + epoch_checkpoints_newest_first(
            weights_dir, "weights"
        )
        if stale:
            print(
                f"note: {weights_dir} holds an earlier run's checkpoints: starting afresh (--resume continues it)"
            )
            for path in stale:
                path.unlink()

    if config.get("channels_last"):  # NHWC convolutions (tensor cores) once the weights are channels-last
        model.to(memory_format=torch.channels_last)
    # ``model`` stays the plain module (state dicts, scoring); ``trained`` is what the training step calls
    trained = wrap_model(model, info, find_unused_parameters=config.get("find_unused_parameters", True))
    if config.get("compile"):
        trained = torch.compile(trained)
    writer = None
    if run.is_main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(run.out_dir / "tensorboard"))

    for epoch in range(start_epoch, config["num_epochs"]):
        started = time.time()
        train_set.set_epoch(epoch)
        loader = make_train_loader(
            train_set, config["batch_size"], config["seed"], epoch, info, num_workers=config["num_workers"]
        )
        trained.train()
        total, count = 0.0, 0
        progress = tqdm(
            loader,
            desc=f"epoch {epoch}/{config['num_epochs']}",
            unit="batch",
            leave=False,
            disable=not run.is_main,
        )
        for waves, labels in progress:
            waves = waves.to(run.device, non_blocking=True)
            labels = labels.to(run.device, non_blocking=True)
            with autocast_context(run.device, run.precision):
                _, logits = trained(waves, Freq_aug=True) if freq_aug else trained(waves)
            loss = criterion(logits.float(), labels)
            optimizer_step(loss, optimizer, scaler, config.get("max_grad_norm"))
            scheduler.step()
            total += loss.item() * len(labels)
            count += len(labels)
            progress.set_postfix(loss=f"{total / count:.4f}")
        loss = all_reduce_mean(total / max(count, 1), info)
        broadcast_buffers(model, info)  # every process scores and saves rank 0's BatchNorm statistics

        result = validate(model, epoch)
        improved = stopper.update(result.value)
        if swa_epochs and epoch >= config["num_epochs"] - swa_epochs:
            swa_model = swa_model or make_swa_model(model)
            swa_model.update_parameters(unwrap_model(model))
        history.append({"epoch": epoch, "loss": loss, **result.numbers})
        rng_states = all_gather_objects(capture_rng_state(), info)
        if run.is_main:
            state_dict = unwrap_model(model).state_dict()
            if improved:
                save_checkpoint_atomically(state_dict, weights_dir / "best.pth")
            save_checkpoint_atomically(state_dict, epoch_checkpoint_path(weights_dir, epoch, "weights"))
            resume_state = {
                "model": state_dict,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "early_stopping": stopper.state_dict(),
                "epoch": epoch,
                "history": json.dumps(history),
                "rng": rng_states,
            }
            if swa_model is not None:
                resume_state["swa"] = swa_model.state_dict()
            save_checkpoint_atomically(resume_state, epoch_checkpoint_path(weights_dir, epoch))
            prune_epoch_checkpoints(weights_dir, keep=2)
            if averaging.get("method") == "top_k":  # keep the top-k candidates; SWA needs none of them
                candidates = [
                    (epoch_checkpoint_path(weights_dir, h["epoch"], "weights"), h["selection"])
                    for h in history
                ]
                keep = [p for p, _ in select_top_k(candidates, int(averaging.get("top_k", 5)))]
                prune_epoch_checkpoints(weights_dir, keep=1, stem="weights", protect=keep)
            else:
                prune_epoch_checkpoints(weights_dir, keep=1, stem="weights")
            write_text_atomically(
                run.out_dir / "history.jsonl", "".join(json.dumps(h) + "\n" for h in history)
            )
            writer.add_scalar("loss", loss, epoch)
            for key, value in result.numbers.items():
                if isinstance(value, (int, float)) and value is not None:
                    writer.add_scalar(key, value, epoch)
            writer.flush()
        line = f"epoch {epoch:3d}  loss {loss:.5f}  {result.line}  ({time.time() - started:.0f} s)"
        run.log(line + ("  (best so far)" if improved else ""))
        barrier(info)
        if stopper.should_stop:
            run.log(f"early stop: no improvement for {stopper.patience} epochs")
            break
    if writer is not None:
        writer.close()

    best_epoch = history[stopper.best_step]["epoch"] if stopper.best_step >= 0 else None
    record = {"selection": stopper.best, "best_epoch": best_epoch, "history": history}
    load_weights(unwrap_model(model), weights_dir / "best.pth")
    if averaging.get("method"):
        record["averaging"] = average_and_choose(
            model, train_set, validate, run, averaging, swa_model, history, stopper.best, mode
        )
    return record


def average_and_choose(
    model, train_set, validate, run, averaging, swa_model, history, best_value, mode
) -> dict:
    """Build the averaged model the config asks for, report it on dev, and keep it only if dev says so."""
    method = averaging["method"]
    weights_dir = run.out_dir / "weights"
    if method == "swa":
        if swa_model is None:
            run.log("SWA: no epoch fell in the averaging window (early stop?): keeping the best checkpoint")
            return {"method": method, "used": False}
        loader = make_train_loader(
            train_set, run.config["batch_size"], run.config["seed"], 0, DistInfo(device=run.device)
        )
        update_bn_waveforms(loader, swa_model, run.device, run.precision)
        state, detail = swa_state_dict(swa_model), f"last {averaging.get('swa_epochs')} epochs"
    elif method == "top_k":
        candidates = [
            (epoch_checkpoint_path(weights_dir, h["epoch"], "weights"), h["selection"]) for h in history
        ]
        state, chosen = top_k_average(candidates, int(averaging.get("top_k", 5)))
        detail = "epochs " + ", ".join(p.stem.split("epoch")[-1] for p, _ in chosen)
    else:
        raise SystemExit(f"error: averaging.method {method!r} is not supported (swa, top_k)")
    best_state = {k: v.clone() for k, v in unwrap_model(model).state_dict().items()}
    load_weights(unwrap_model(model), state, what=f"{method} average")
    result = validate(model, -1)
    better = result.value <= best_value if mode == "min" else result.value >= best_value
    run.log(
        f"{method} average ({detail}): {result.line}; best single checkpoint: {best_value:.4f} -> "
        + ("using the average" if better else "keeping the best single checkpoint")
    )
    if better:
        if run.is_main:
            save_checkpoint_atomically(unwrap_model(model).state_dict(), weights_dir / "averaged.pth")
    else:
        load_weights(unwrap_model(model), best_state)
    return {"method": method, "detail": detail, "validation": result.numbers, "used": better}


# ----------------------------------------------------------------------------------------------------
# the anti-spoofing recipe
# ----------------------------------------------------------------------------------------------------
def train_antispoofing(run: Run) -> dict:
    config = run.config
    require(config, "database_path", "num_epochs", "batch_size", "optim_config")
    database = config["database_path"]
    splits = {}
    try:
        for split in ("train", "dev", "eval"):
            splits[split] = asvspoof_trials(database, split)
            check_audio_exists(splits[split], f"ASVspoof 2019 LA {split} ({database})")
    except ProtocolError as exc:
        raise SystemExit(f"error: {exc}") from None
    dses = dses_trials(run)

    try:
        model = build_model(config["model_config"]).to(run.device)
    except (ConfigError, WeightLoadError) as exc:
        raise SystemExit(f"error: {exc}") from None
    n_params = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    run.log(
        f"model {config['model_config']['architecture']}: {n_params:,} parameters ({n_train:,} trainable)"
    )
    train_set = TrainDataset(
        splits["train"],
        config["model_config"].get("nb_samp", NB_SAMP),
        seed=config["seed"],
        augment=make_augment(config),
    )

    def validate(model, epoch: int) -> Validation:
        tag = f"_epoch{epoch:03d}" if epoch >= 0 else "_averaged"
        dev = evaluate_la_split(model, splits["dev"], run, "dev", tag=tag)
        numbers = {
            "selection": dev["eer_percent"],
            "dev_eer": dev["eer_percent"],
            "dev_tdcf": dev.get("min_tdcf"),
        }
        line = f"dev EER {dev['eer_percent']:.3f} %"
        if dev.get("min_tdcf") is not None:
            line += f"  dev min t-DCF {dev['min_tdcf']:.4f}"
        if dses and epoch >= 0:
            folder = run.out_dir / "dses" / f"epoch{epoch:03d}"
            breakdown = evaluate_dses(model, dses, run, folder, full=False)["breakdown"]
            numbers["dses_eer/pooled"] = breakdown["pooled"]["eer_percent"]
            for emotion, row in breakdown["per_emotion"].items():
                numbers[f"dses_eer/{emotion}"] = row["eer_percent"]
            line += f"  DSES EER {breakdown['pooled']['eer_percent']:.2f} %"
        return Validation(dev["eer_percent"], line, numbers)

    criterion = nn.CrossEntropyLoss(weight=torch.tensor(CLASS_WEIGHTS, device=run.device))
    freq_aug = str(config.get("freq_aug", False)).lower() == "true"
    record = fit(model, train_set, criterion, validate, run, mode="min", freq_aug=freq_aug)
    run.log(f"best dev EER {record['selection']:.3f} % at epoch {record['best_epoch']}: scoring eval with it")
    return {"dev": record, **run_evaluation(model, run, dses)}


# ----------------------------------------------------------------------------------------------------
# the emotion-recogniser recipe (ACRNN on the bona fide ESD part of DSES)
# ----------------------------------------------------------------------------------------------------
def ser_split(trials: list[Trial], config: dict) -> tuple[list[Trial], list[Trial]]:
    """Speaker-disjoint split: ``ser_val_speakers`` from the config, else the last 20 % of speakers (sorted)."""
    speakers = sorted({t.speaker for t in trials})
    if len(speakers) < 2:
        raise SystemExit("error: SER training needs at least two ESD speakers for a speaker-disjoint split")
    val = config.get("ser_val_speakers") or speakers[-max(1, len(speakers) // 5) :]
    unknown = sorted(set(val) - set(speakers))
    if unknown:
        raise SystemExit(f"error: ser_val_speakers {unknown} are not in the ESD part of DSES")
    return [t for t in trials if t.speaker not in val], [t for t in trials if t.speaker in val]


def emotion_accuracy(labels: np.ndarray, predictions: np.ndarray) -> tuple[float, float]:
    """Weighted accuracy (overall) and unweighted accuracy (mean per-class recall), in %."""
    wa = float((labels == predictions).mean() * 100)
    recalls = [(predictions[labels == c] == c).mean() for c in np.unique(labels)]
    return wa, float(np.mean(recalls) * 100)


def train_ser(run: Run) -> dict:
    config = run.config
    require(config, "emo_dataset", "num_epochs", "batch_size", "optim_config")
    root = config["emo_dataset"]
    try:
        trials, _ = scan_dses(root)
    except ProtocolError as exc:
        raise SystemExit(f"error: {exc}") from None
    esd = [t for t in trials if t.key == "bonafide"]
    check_audio_exists(esd, f"ESD ({root})")
    train_trials, val_trials = ser_split(esd, config)
    run.log(
        f"SER on the bona fide ESD part of {root}: train {len(train_trials)}, validation {len(val_trials)} "
        f"(held-out speakers {sorted({t.speaker for t in val_trials})})"
    )
    model_config = dict(config["model_config"])
    model_config.setdefault("num_classes", len(EMOTIONS))
    try:
        model = build_model(model_config).to(run.device)
    except (ConfigError, WeightLoadError) as exc:
        raise SystemExit(f"error: {exc}") from None
    emotion_index = {e: i for i, e in enumerate(EMOTIONS)}
    nb_samp = model_config.get("nb_samp", NB_SAMP)
    train_set = TrainDataset(
        train_trials, nb_samp, seed=config["seed"], label_of=lambda t: emotion_index[t.emotion]
    )
    val_labels = np.array([emotion_index[t.emotion] for t in val_trials])

    def validate(model, epoch: int) -> Validation:
        logits = score_trials(model, val_trials, run, desc="validation")
        wa, ua = emotion_accuracy(val_labels, logits.argmax(axis=1))
        return Validation(
            ua, f"val WA {wa:.2f} %  UA {ua:.2f} %", {"selection": ua, "val_wa": wa, "val_ua": ua}
        )

    record = fit(model, train_set, nn.CrossEntropyLoss(), validate, run, mode="max")
    best = record["history"][[h["epoch"] for h in record["history"]].index(record["best_epoch"])]
    run.log(
        f"best validation UA {best['val_ua']:.2f} % (WA {best['val_wa']:.2f} %) at epoch {record['best_epoch']}: "
        f"{run.out_dir / 'weights' / 'best.pth'} is a ser_path for the fusion models"
    )
    return {"ser": record}


# ----------------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    args = parse_args(argv)
    config = load_config(args)
    try:
        info = init_distributed(args.device)
    except RuntimeError as exc:
        raise SystemExit(f"error: {exc}") from None
    try:
        if "demo" in config:  # the embedded demo: build its small synthetic corpus on first run
            from antispoof.demo import ensure_demo_corpus

            if info.is_main:
                ensure_demo_corpus(config)
            barrier(info)
        set_seed(config["seed"], config)
        run = Run(config, args, info, experiment_dir(config, args))
        try:
            run.precision = check_precision(config.get("precision", "fp32"), info.device)
        except ValueError as exc:
            raise SystemExit(f"error: {exc}") from None
        if run.is_main:
            run.out_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomically(run.out_dir / "config.conf", json.dumps(config, indent=4) + "\n")
            print(
                f"experiment folder: {run.out_dir}"
                + (f" ({info.world_size} processes)" if info.distributed else "")
            )
        barrier(info)

        if args.eval:
            model = load_model_for_scoring(config, args.eval_model_weights, info.device)
            metrics = run_evaluation(model, run, dses_trials(run))
        elif config["model_config"].get("architecture") == "ACRNN":
            metrics = train_ser(run)
        else:
            metrics = train_antispoofing(run)
        if run.is_main:
            write_json(run.out_dir / "metrics.json", metrics)
            print(f"metrics: {run.out_dir / 'metrics.json'}")
        return 0
    finally:
        cleanup()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ProtocolError, evaluation.ScoreProtocolMismatch, WeightLoadError, CheckpointError) as exc:
        sys.exit(f"error: {exc}")
