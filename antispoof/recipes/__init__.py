"""Recipes: what a run does with an experiment config. ``antispoofing`` trains and evaluates a detector on
ASVspoof 2019 LA (and DSES per emotion); ``ser`` trains and evaluates the ACRNN emotion recogniser on ESD."""

from __future__ import annotations

from antispoof.config import ExperimentConfig


def recipe_of(config: ExperimentConfig) -> str:
    """ "ser" for an emotion-recognition config (the ACRNN on its own), else "antispoofing"."""
    return "ser" if config.architecture in ("ACRNN", "SER") else "antispoofing"
