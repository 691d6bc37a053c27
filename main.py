"""Train and evaluate a detector on ASVspoof 2019 LA, and evaluate it on DSES per emotion and per TTS system.

    python main.py --config config/AASIST.conf            # train, select on dev, score eval (and DSES)
    python main.py --eval --config config/AASIST.conf     # score eval (and DSES) with model_path
    python main.py --config config/SER.conf               # train the ACRNN emotion recogniser on ESD

Results go to ``exp_result/<tag>/``: the config copy, ``weights/``, dev and eval score files (official format),
the EER / t-DCF report, the DSES tables and ``metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

import evaluation
from data_utils import (
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
from inference import load_model_for_scoring, pick_device, predict_logits, read_config, write_lines_atomically
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
    p.add_argument("--batch_size", type=int, help="overrides the config")
    p.add_argument("--num_workers", type=int, help="DataLoader workers (overrides the config)")
    p.add_argument(
        "--resume", action="store_true", help="continue from the experiment folder's last checkpoint"
    )
    return p.parse_args(argv)


def load_config(args: argparse.Namespace) -> dict:
    config = read_config(args.config)
    for key in ("database_path", "emo_dataset", "seed", "num_epochs", "batch_size", "num_workers"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    config.setdefault("seed", 1234)
    config.setdefault("num_workers", 0)
    return config


def require(config: dict, *keys: str, where: str = "config"):
    for key in keys:
        if key not in config:
            raise SystemExit(f"error: {where} has no {key!r} (see config/AASIST.conf for the layout)")


def set_seed(seed: int, config: dict) -> None:
    """Seed every generator; deterministic kernels when the config asks (always repeatable on the CPU)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
        torch.backends.cudnn.deterministic = bool(config.get("cudnn_deterministic_toggle", True))
        torch.backends.cudnn.benchmark = bool(config.get("cudnn_benchmark_toggle", False))


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


def save_atomically(obj, path: Path) -> None:
    """torch.save to a temporary file, then rename: a crash never leaves a half-written checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def write_json(path: Path, obj) -> None:
    write_lines_atomically(path, [json.dumps(obj, indent=2, default=float)])


# ----------------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------------
def make_optimizer(model: nn.Module, optim_config: dict, steps_total: int):
    """Adam and AASIST's per-step cosine annealing from base_lr to lr_min."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise SystemExit("error: the model has no trainable parameters")
    name = optim_config.get("optimizer", "adam").lower()
    if name != "adam":
        raise SystemExit(f"error: optim_config.optimizer {name!r} is not supported (adam)")
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
    rawboost_config = config.get("rawboost")
    if not rawboost_config:
        return None
    from rawboost import make_rawboost

    return make_rawboost(rawboost_config)


def train_one_epoch(model, loader, optimizer, scheduler, criterion, device, freq_aug, desc) -> float:
    model.train()
    total, count = 0.0, 0
    progress = tqdm(loader, desc=desc, unit="batch", leave=False, dynamic_ncols=True)
    for waves, labels in progress:
        waves, labels = waves.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        _, logits = model(waves, Freq_aug=freq_aug) if freq_aug else model(waves)
        loss = criterion(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += loss.item() * len(labels)
        count += len(labels)
        progress.set_postfix(loss=f"{total / count:.4f}")
    return total / max(count, 1)


class Checkpointer:
    """Keeps ``weights/best.pth`` (selected on dev) and ``weights/last.pth`` (everything needed to resume)."""

    def __init__(self, folder: Path):
        self.folder = folder / "weights"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.best = self.folder / "best.pth"
        self.last = self.folder / "last.pth"

    def save_best(self, model: nn.Module) -> None:
        save_atomically(model.state_dict(), self.best)

    def save_last(self, model, optimizer, scheduler, epoch: int, record: dict) -> None:
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch,
            "record": json.dumps(record),
            "torch_rng": torch.get_rng_state(),
        }
        save_atomically(state, self.last)

    def resume(self, model, optimizer, scheduler) -> tuple[int, dict]:
        """Restore the last completed epoch; returns (next epoch, best-dev record)."""
        if not self.last.is_file():
            raise SystemExit(f"error: --resume: no checkpoint at {self.last}")
        try:
            state = torch.load(self.last, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise SystemExit(f"error: {self.last}: unreadable checkpoint ({exc})") from None
        load_weights(model, state["model"], what=str(self.last))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        return state["epoch"] + 1, json.loads(state["record"])


def seeded_loader(dataset, batch_size: int, seed: int, epoch: int, num_workers: int, device) -> DataLoader:
    """A shuffling loader whose order depends only on (seed, epoch): resumed runs see the same batches."""
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        generator=generator,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )


# ----------------------------------------------------------------------------------------------------
# evaluation
# ----------------------------------------------------------------------------------------------------
def score_trials(model, trials: list[Trial], config: dict, device, desc: str) -> np.ndarray:
    logits = predict_logits(
        model,
        [t.path for t in trials],
        nb_samp=config["model_config"].get("nb_samp", NB_SAMP),
        batch_size=config.get("eval_batch_size", config.get("batch_size", 8)),
        device=device,
        num_workers=config.get("num_workers", 0),
        desc=desc,
    )
    return logits[:, 1]


def write_and_check_scores(path: Path, trials: list[Trial], scores: np.ndarray) -> None:
    """Write the official score file, read it back and check it against the protocol it came from."""
    rows = [(t.utt_id, t.system, t.key, float(s)) for t, s in zip(trials, scores, strict=True)]
    evaluation.write_score_file(path, rows)
    evaluation.check_scores_against_protocol(
        evaluation.read_score_file(path), [(t.speaker, t.utt_id, t.system, t.key) for t in trials], path
    )


def asv_scores_path(config: dict, split: str) -> Path | None:
    """The organisers' ASV scores for the t-DCF (eval: config's asv_score_path; dev: same folder)."""
    database = Path(config["database_path"])
    eval_path = database / config.get("asv_score_path", f"{ASV_SCORES_DIR}/{ASV_EVAL_SCORES}")
    path = eval_path if split == "eval" else eval_path.with_name(ASV_DEV_SCORES)
    return path if path.is_file() else None


def evaluate_la_split(model, trials, config, device, out_dir: Path, split: str, tag: str = "") -> dict:
    """Score a split, write and check its score file, return EER / min t-DCF / per-attack EER."""
    scores = score_trials(model, trials, config, device, desc=f"scoring {split}")
    score_path = out_dir / f"{split}_scores{tag}.txt"
    write_and_check_scores(score_path, trials, scores)
    asv = asv_scores_path(config, split)
    if asv is None:
        print(f"note: no ASV scores for {split} in {config['database_path']}: EER only, no t-DCF")
    result = evaluation.evaluate_asvspoof2019(str(score_path), str(asv) if asv else None)
    result["score_file"] = str(score_path)
    return result


def dses_trials(config: dict, out_dir: Path) -> list[Trial] | None:
    root = config.get("emo_dataset")
    if not root:
        print("DSES: no emo_dataset in the config: skipping the per-emotion evaluation")
        return None
    if not Path(root).is_dir():
        print(
            f"DSES: {root} not found: skipping the per-emotion evaluation (python download_dataset.py "
            "--dataset emotional fetches it)"
        )
        return None
    trials, report = scan_dses(root)
    print(report.summary())
    out_dir.mkdir(parents=True, exist_ok=True)
    write_dses_protocol(trials, out_dir / "dses_protocol.tsv", root)
    check_audio_exists(trials, f"DSES ({root})")
    return trials


def evaluate_dses(model, trials: list[Trial], config: dict, device, out_dir: Path, full: bool = True) -> dict:
    """EER per emotion / system / emotion x system and pooled, with speaker-bootstrap CIs, tables and DET plots."""
    scores = score_trials(model, trials, config, device, desc="scoring DSES")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_and_check_scores(out_dir / "dses_scores.txt", trials, scores)
    entries = [
        {"utt_id": t.utt_id, "speaker": t.speaker, "emotion": t.emotion, "system": t.system, "key": t.key}
        for t in trials
    ]
    breakdown = evaluation.dses_breakdown(
        entries, scores, n_bootstrap=config.get("dses_bootstrap", 1000) if full else 0
    )
    markdown = evaluation.format_dses_markdown(breakdown)
    write_lines_atomically(out_dir / "dses_report.md", [markdown])
    write_json(out_dir / "dses_metrics.json", breakdown)
    if full:
        evaluation.plot_det(entries, scores, out_dir / "det")
    return {"breakdown": breakdown, "markdown": markdown}


def run_evaluation(model, config: dict, device, out_dir: Path) -> dict:
    """Score ASVspoof 2019 LA eval (where present) and DSES (where configured) with an already loaded model."""
    metrics: dict = {}
    database = config.get("database_path")
    eval_protocol_found = False
    if database:
        try:
            trials = asvspoof_trials(database, "eval")
            eval_protocol_found = True
        except ProtocolError as exc:
            print(f"ASVspoof 2019 LA eval skipped: {exc}")
    if eval_protocol_found:
        check_audio_exists(trials, f"ASVspoof 2019 LA eval ({database})")
        result = evaluate_la_split(model, trials, config, device, out_dir, "eval")
        report = evaluation.format_asvspoof2019_report(result)
        write_lines_atomically(out_dir / "t-DCF_EER.txt", [report])
        print(report)
        metrics["eval"] = result
    dses = dses_trials(config, out_dir / "dses")
    if dses:
        result = evaluate_dses(model, dses, config, device, out_dir / "dses")
        print(result["markdown"])
        metrics["dses"] = result["breakdown"]
    if not metrics:
        raise SystemExit(
            "error: nothing to evaluate: neither ASVspoof 2019 LA eval nor a DSES folder was found"
        )
    return metrics


# ----------------------------------------------------------------------------------------------------
# the anti-spoofing recipe
# ----------------------------------------------------------------------------------------------------
def train_antispoofing(config: dict, args, device, out_dir: Path) -> dict:
    require(config, "database_path", "num_epochs", "batch_size", "optim_config")
    database = config["database_path"]
    try:
        train_trials = asvspoof_trials(database, "train")
        dev_trials = asvspoof_trials(database, "dev")
        eval_trials = asvspoof_trials(database, "eval")
        for split, trials in (("train", train_trials), ("dev", dev_trials), ("eval", eval_trials)):
            check_audio_exists(trials, f"ASVspoof 2019 LA {split} ({database})")
    except ProtocolError as exc:
        raise SystemExit(f"error: {exc}") from None
    dses = dses_trials(config, out_dir / "dses")

    try:
        model = build_model(config["model_config"]).to(device)
    except (ConfigError, WeightLoadError) as exc:
        raise SystemExit(f"error: {exc}") from None
    n_params = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"model {config['model_config']['architecture']}: {n_params:,} parameters ({n_train:,} trainable)")

    seed = config["seed"]
    train_set = TrainDataset(
        train_trials, config["model_config"].get("nb_samp", NB_SAMP), seed=seed, augment=make_augment(config)
    )
    steps_per_epoch = len(train_set) // config["batch_size"]
    if steps_per_epoch == 0:
        raise SystemExit(
            f"error: {len(train_set)} training trials are fewer than one batch ({config['batch_size']})"
        )
    optimizer, scheduler = make_optimizer(
        model, config["optim_config"], steps_per_epoch * config["num_epochs"]
    )
    criterion = nn.CrossEntropyLoss(weight=torch.tensor(CLASS_WEIGHTS, device=device))
    freq_aug = str(config.get("freq_aug", False)).lower() == "true"

    checkpoints = Checkpointer(out_dir)
    start_epoch, record = 0, {"best_dev_eer": math.inf, "best_epoch": -1}
    if args.resume:
        start_epoch, record = checkpoints.resume(model, optimizer, scheduler)
        print(
            f"resumed from {checkpoints.last}: epoch {start_epoch}, best dev EER {record['best_dev_eer']:.3f} %"
        )

    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(out_dir / "tensorboard"))
    history_path = out_dir / "history.jsonl"
    for epoch in range(start_epoch, config["num_epochs"]):
        train_set.set_epoch(epoch)
        loader = seeded_loader(train_set, config["batch_size"], seed, epoch, config["num_workers"], device)
        started = time.time()
        loss = train_one_epoch(
            model,
            loader,
            optimizer,
            scheduler,
            criterion,
            device,
            freq_aug,
            f"epoch {epoch}/{config['num_epochs']}",
        )
        dev = evaluate_la_split(model, dev_trials, config, device, out_dir, "dev", tag=f"_epoch{epoch:03d}")
        line = (
            f"epoch {epoch:3d}  loss {loss:.5f}  dev EER {dev['eer_percent']:.3f} %"
            + (f"  dev min t-DCF {dev['min_tdcf']:.4f}" if dev.get("min_tdcf") is not None else "")
            + f"  ({time.time() - started:.0f} s)"
        )
        writer.add_scalar("loss", loss, epoch)
        writer.add_scalar("dev_eer", dev["eer_percent"], epoch)
        if dev.get("min_tdcf") is not None:
            writer.add_scalar("dev_tdcf", dev["min_tdcf"], epoch)
        if dses:
            dses_epoch = evaluate_dses(
                model, dses, config, device, out_dir / "dses" / f"epoch{epoch:03d}", full=False
            )
            pooled = dses_epoch["breakdown"]["pooled"]["eer_percent"]
            writer.add_scalar("dses_eer/pooled", pooled, epoch)
            for emotion, row in dses_epoch["breakdown"]["per_emotion"].items():
                writer.add_scalar(f"dses_eer/{emotion}", row["eer_percent"], epoch)
            line += f"  DSES EER {pooled:.2f} %"
        if dev["eer_percent"] < record["best_dev_eer"]:  # model selection on dev only, never on eval
            record = {
                "best_dev_eer": dev["eer_percent"],
                "best_dev_tdcf": dev.get("min_tdcf"),
                "best_epoch": epoch,
            }
            checkpoints.save_best(model)
            line += "  (best so far)"
        checkpoints.save_last(model, optimizer, scheduler, epoch, record)
        with open(history_path, "a") as f:
            f.write(
                json.dumps(
                    {
                        "epoch": epoch,
                        "loss": loss,
                        "dev_eer": dev["eer_percent"],
                        "dev_tdcf": dev.get("min_tdcf"),
                    }
                )
                + "\n"
            )
        tqdm.write(line)
    writer.close()

    print(
        f"best dev EER {record['best_dev_eer']:.3f} % at epoch {record['best_epoch']}: scoring eval with it"
    )
    load_weights(model, checkpoints.best)
    metrics = {"dev": record, **run_evaluation(model, config, device, out_dir)}
    return metrics


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


def train_ser(config: dict, args, device, out_dir: Path) -> dict:
    require(config, "emo_dataset", "num_epochs", "batch_size", "optim_config")
    root = config["emo_dataset"]
    try:
        trials, report = scan_dses(root)
    except ProtocolError as exc:
        raise SystemExit(f"error: {exc}") from None
    esd = [t for t in trials if t.key == "bonafide"]
    print(f"SER on the bona fide ESD part of {root}: {len(esd)} utterances")
    check_audio_exists(esd, f"ESD ({root})")
    train_trials, val_trials = ser_split(esd, config)
    print(
        f"speaker-disjoint split: train {len(train_trials)}, validation {len(val_trials)} "
        f"(speakers {sorted({t.speaker for t in val_trials})})"
    )
    model_config = dict(config["model_config"])
    model_config.setdefault("num_classes", len(EMOTIONS))
    try:
        model = build_model(model_config).to(device)
    except (ConfigError, WeightLoadError) as exc:
        raise SystemExit(f"error: {exc}") from None
    emotion_index = {e: i for i, e in enumerate(EMOTIONS)}
    nb_samp = model_config.get("nb_samp", NB_SAMP)
    train_set = TrainDataset(
        train_trials, nb_samp, seed=config["seed"], label_of=lambda t: emotion_index[t.emotion]
    )
    steps_per_epoch = max(1, len(train_set) // config["batch_size"])
    optimizer, scheduler = make_optimizer(
        model, config["optim_config"], steps_per_epoch * config["num_epochs"]
    )
    criterion = nn.CrossEntropyLoss()
    checkpoints = Checkpointer(out_dir)
    start_epoch, record = 0, {"best_val_ua": -1.0, "best_epoch": -1}
    if args.resume:
        start_epoch, record = checkpoints.resume(model, optimizer, scheduler)
    val_labels = np.array([emotion_index[t.emotion] for t in val_trials])
    for epoch in range(start_epoch, config["num_epochs"]):
        train_set.set_epoch(epoch)
        loader = seeded_loader(
            train_set, config["batch_size"], config["seed"], epoch, config["num_workers"], device
        )
        loss = train_one_epoch(
            model, loader, optimizer, scheduler, criterion, device, False, f"SER epoch {epoch}"
        )
        logits = predict_logits(
            model,
            [t.path for t in val_trials],
            nb_samp=nb_samp,
            batch_size=config["batch_size"],
            device=device,
            num_workers=config["num_workers"],
            desc="validation",
        )
        wa, ua = emotion_accuracy(val_labels, logits.argmax(axis=1))
        line = f"SER epoch {epoch:3d}  loss {loss:.4f}  val WA {wa:.2f} %  UA {ua:.2f} %"
        if ua > record["best_val_ua"]:
            record = {"best_val_ua": ua, "best_val_wa": wa, "best_epoch": epoch}
            checkpoints.save_best(model)
            line += "  (best so far)"
        checkpoints.save_last(model, optimizer, scheduler, epoch, record)
        tqdm.write(line)
    print(
        f"best validation UA {record['best_val_ua']:.2f} % (WA {record['best_val_wa']:.2f} %) at epoch "
        f"{record['best_epoch']}: {checkpoints.best} is a ser_path for the fusion models"
    )
    return {"ser": record}


# ----------------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    args = parse_args(argv)
    config = load_config(args)
    if "demo" in config:  # the embedded demo: build its small synthetic corpus on first run
        from demo import ensure_demo_corpus

        ensure_demo_corpus(config)
    device = pick_device(args.device)
    set_seed(config["seed"], config)
    out_dir = experiment_dir(config, args)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_lines_atomically(out_dir / "config.conf", [json.dumps(config, indent=4)])
    print(f"experiment folder: {out_dir}")

    architecture = config["model_config"].get("architecture")
    if args.eval:
        model = load_model_for_scoring(config, args.eval_model_weights, device)
        metrics = run_evaluation(model, config, device, out_dir)
    elif architecture == "ACRNN":
        metrics = train_ser(config, args, device, out_dir)
    else:
        metrics = train_antispoofing(config, args, device, out_dir)
    write_json(out_dir / "metrics.json", metrics)
    print(f"metrics: {out_dir / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ProtocolError, evaluation.ScoreProtocolMismatch, WeightLoadError) as exc:
        sys.exit(f"error: {exc}")
