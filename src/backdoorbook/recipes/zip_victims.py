"""Backdoored victim classifiers shipped as artifacts (see ``tools/train_zip_victims.py``).

A victim artifact holds a CIFAR ResNet's weights; its provenance record says how many classes
it has and which trigger it was poisoned with (name, overrides, seed, target), so
:func:`load_victim` can rebuild both the model and the exact trigger the attacker uses.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ..artifacts import ARTIFACTS_DIR, artifact_provenance, load_artifact
from ..poisoning import Trigger, make_trigger
from .cifar_resnet import cifar_resnet


def load_victim(name: str, directory: Path = ARTIFACTS_DIR) -> tuple[nn.Module, Trigger, dict]:
    """``(model, trigger, provenance)`` for victim artifact ``name``; the model takes [0, 1] inputs, eval mode."""
    record = artifact_provenance(name, directory)
    for key in ("attack", "target", "num_classes", "trigger_seed", "trigger_overrides", "depth"):
        if key not in record:
            raise ValueError(f"artifact {name!r} is not a victim: its provenance lacks {key!r}")
    model = cifar_resnet(record["depth"], record["num_classes"])
    model.model.load_state_dict(load_artifact(name, directory))
    trigger = make_trigger(record["attack"], seed=record["trigger_seed"], **record["trigger_overrides"])
    return model.eval(), trigger, record
