"""An experiment folder and one process's view of it.

``<output_dir>/<name>/`` holds the config copy (``config.conf``), ``weights/``, score files, reports,
``history.jsonl`` and ``metrics.json``. The name depends only on what defines the run (recipe, config, batch
size, comment), never on ``num_epochs``, so ``--resume --num_epochs 200`` continues a 100-epoch run. Each
``--eval`` goes to its own folder named after the weights it scores.

Nothing a user made is destroyed by accident: a new run on a folder that holds checkpoints refuses (use
``--resume``, ``--overwrite`` or another ``--comment``), and ``--resume`` refuses a config whose
training-relevant fields differ from the checkpoint's unless ``--allow_config_change`` says so. A run that fails
before it wrote anything worth keeping removes the folder it created.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from antispoof.config import ExperimentConfig
from antispoof.fileio import write_text_atomically
from antispoof.training.checkpoints import CheckpointManager
from antispoof.training.distributed import DistInfo, all_gather_objects

# the fields a resumed run must share with its checkpoint: model, optimiser and schedule, batch, seed, data
RESUME_FIELDS = (
    "model_config",
    "optim_config",
    "batch_size",
    "seed",
    "database_path",
    "emo_dataset",
    "freq_aug",
    "rawboost",
    "train_crop",
    "augment_on",
    "averaging",
    "precision",
)
# what a run may leave behind that is not worth keeping when it fails before its first result
DISPOSABLE = {"config.conf", "tensorboard"}


def experiment_name(config: ExperimentConfig, config_path: str, comment: str | None, recipe: str) -> str:
    stem = Path(config_path).stem
    prefix = "SER" if recipe == "ser" else config.track
    if stem.upper().startswith(prefix.upper()):  # config/SER.conf -> SER_bs32, not SER_SER_bs32
        name = prefix + stem[len(prefix) :]
    else:
        name = f"{prefix}_{stem}"
    name += f"_bs{config.batch_size}"
    return name + (f"_{comment}" if comment else "")


def eval_folder_name(base: str, weights: str | None) -> str:
    """``<base>_eval_<weights>``: the weights' experiment and file name (``best``), or the file's stem."""
    if not weights:
        return f"{base}_eval"
    path = Path(weights)
    tag = (
        f"{path.parent.parent.name}-{path.stem}"
        if path.parent.name == "weights" and path.parent.parent.name not in ("", "models")
        else path.stem
    )
    return f"{base}_eval_{re.sub(r'[^A-Za-z0-9._-]+', '_', tag)}"


class ScalarWriter:
    """TensorBoard scalars on rank 0 (opened on first use, so a run that fails early leaves no event file)."""

    def __init__(self, folder: Path, enabled: bool):
        self.folder, self.enabled, self.writer = folder, enabled, None

    def log(self, step: int, numbers: dict) -> None:
        if not self.enabled:
            return
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.folder))
        for key, value in numbers.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclass
class Run:
    """One process's view of an experiment: config, folder, precision, and its place among torchrun's ranks."""

    config: ExperimentConfig
    info: DistInfo
    out_dir: Path
    precision: str = "fp32"
    resume: bool = False
    allow_config_change: bool = False
    created: bool = field(default=False, repr=False)

    @property
    def device(self):
        return self.info.device

    @property
    def is_main(self) -> bool:
        return self.info.is_main

    @property
    def resume_fields(self) -> dict:
        values = self.config.to_dict()
        return {k: values.get(k) for k in RESUME_FIELDS}

    def log(self, message: str) -> None:
        if self.is_main:
            tqdm.write(message)

    def on_main(self, fn: Callable, *args, **kwargs):
        """Run ``fn`` on rank 0 only and hand its result to every rank (files are written once)."""
        result = fn(*args, **kwargs) if self.is_main else None
        return all_gather_objects(result, self.info)[0]

    def write_json(self, name: str, obj) -> Path:
        return write_text_atomically(self.out_dir / name, json.dumps(obj, indent=2, default=float) + "\n")

    def write_history(self, history: list[dict]) -> None:
        write_text_atomically(self.out_dir / "history.jsonl", "".join(json.dumps(h) + "\n" for h in history))

    def scalar_writer(self) -> ScalarWriter:
        return ScalarWriter(self.out_dir / "tensorboard", self.is_main)

    def check_resume_compatible(self, saved: dict | None, checkpoint: Path) -> None:
        """Refuse to resume with training-relevant fields that differ from the checkpoint's (naming them)."""
        if saved is None:
            return  # a checkpoint from before fields were recorded
        current = json.loads(json.dumps(self.resume_fields))
        differ = sorted(k for k in RESUME_FIELDS if k in saved and saved[k] != current.get(k))
        if differ and not self.allow_config_change:
            raise SystemExit(
                f"error: --resume: {checkpoint} was trained with different {', '.join(differ)}; restore the "
                "config, or pass --allow_config_change to continue with the new values"
            )
        if differ:
            self.log(f"note: resuming with changed {', '.join(differ)} (--allow_config_change)")


def prepare_folder(out_dir: Path, resume: bool, overwrite: bool) -> bool:
    """Check that a training run may use ``out_dir``; returns True when this run creates it.

    A folder with checkpoints needs ``--resume`` (continue) or ``--overwrite`` (delete them and start afresh).
    """
    checkpoints = CheckpointManager(out_dir / "weights").existing() if out_dir.is_dir() else []
    if resume and not checkpoints:
        raise SystemExit(f"error: --resume: no checkpoint in {out_dir / 'weights'}")
    if checkpoints and not resume:
        if not overwrite:
            raise SystemExit(
                f"error: {out_dir} holds checkpoints of an earlier run: pass --resume to continue it, "
                "--overwrite to delete them and start afresh, or --comment NAME for a new folder"
            )
        for path in checkpoints:
            path.unlink()
        for stale in ("history.jsonl", "metrics.json"):
            (out_dir / stale).unlink(missing_ok=True)
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    return created


def prepare_eval_folder(out_dir: Path, overwrite: bool) -> bool:
    """An evaluation folder: refuse to overwrite an earlier evaluation's results without ``--overwrite``."""
    if (out_dir / "metrics.json").is_file() and not overwrite:
        raise SystemExit(
            f"error: {out_dir} holds an earlier evaluation of these weights: pass --overwrite to replace it, "
            "or --comment NAME for a new folder"
        )
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    return created


def remove_if_disposable(out_dir: Path) -> bool:
    """Remove a folder this run created when it holds nothing but disposable files (a failed start)."""
    if not out_dir.is_dir():
        return False
    entries = {p.name for p in out_dir.iterdir()}
    weights = out_dir / "weights"
    if weights.is_dir() and not any(weights.iterdir()):
        entries.discard("weights")
    if entries - DISPOSABLE:
        return False
    shutil.rmtree(out_dir, ignore_errors=True)
    return True
