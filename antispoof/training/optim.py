"""The optimiser, its learning-rate schedule and one mixed-precision-aware step."""

from __future__ import annotations

import math

import torch


def optimizer_step(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    max_grad_norm: float | None = None,
) -> None:
    """Backward, optional gradient clipping (on unscaled gradients), optimiser step and scaler update."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if max_grad_norm:
        scaler.unscale_(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    scaler.step(optimizer)
    scaler.update()


def make_optimizer(model: torch.nn.Module, settings, steps_total: int):
    """Adam on the trainable parameters and AASIST's per-step cosine annealing from ``base_lr`` to ``lr_min``
    (``settings``: an :class:`antispoof.config.OptimConfig`)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise SystemExit("error: the model has no trainable parameters")
    if settings is None:
        raise SystemExit("error: the config has no optim_config (see config/AASIST.conf for the layout)")
    optimizer = torch.optim.Adam(
        params,
        lr=settings.base_lr,
        betas=tuple(settings.betas),
        weight_decay=settings.weight_decay,
        amsgrad=settings.amsgrad,
    )
    floor = settings.lr_min / settings.base_lr

    def cosine(step: int) -> float:
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * step / max(1, steps_total)))

    schedule = cosine if settings.scheduler == "cosine" else (lambda step: 1.0)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
