"""Resumable training state in one safetensors file: tensors as tensors, everything else as JSON.

A training loop's state is a nested structure of dicts and lists (a model's and an
optimiser's ``state_dict``, a generator's state, counters, a loss history). :func:`save_state`
stores its tensors in a safetensors file and the rest of the structure in the file's JSON
metadata; :func:`load_state` rebuilds it. Writing goes to a temporary file that is renamed
into place, so a run stopped at any moment leaves either the old or the new state.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

_TENSOR = "__tensor__"
_TUPLE = "__tuple__"


def _split(value, tensors: dict[str, torch.Tensor], path: str):
    if isinstance(value, torch.Tensor):
        tensors[path] = value.detach().cpu().contiguous()
        return {_TENSOR: path}
    if isinstance(value, dict):
        if not all(isinstance(k, (str, int)) for k in value):
            raise TypeError(
                "state keys must be str or int, got "
                f"{[type(k).__name__ for k in value]} at {path!r}"
            )
        return {
            "keys": [[type(k).__name__, k] for k in value],
            "values": [_split(v, tensors, f"{path}/{k}") for k, v in value.items()],
        }
    if isinstance(value, (list, tuple)):
        items = [_split(v, tensors, f"{path}/{i}") for i, v in enumerate(value)]
        return {_TUPLE: items} if isinstance(value, tuple) else items
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} at {path!r} in a training state")


def _join(value, tensors):
    if isinstance(value, dict):
        if _TENSOR in value:
            return tensors[value[_TENSOR]]
        if _TUPLE in value:
            return tuple(_join(v, tensors) for v in value[_TUPLE])
        keys = [int(k) if kind == "int" else k for kind, k in value["keys"]]
        return {k: _join(v, tensors) for k, v in zip(keys, value["values"])}
    if isinstance(value, list):
        return [_join(v, tensors) for v in value]
    return value


def save_state(path: Path, state: dict) -> Path:
    """Write ``state`` (nested dicts / lists / tuples of tensors and JSON scalars) to ``path``
    atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    structure = _split(state, tensors, "state")
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"structure": json.dumps(structure)})
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


def load_state(path: Path) -> dict:
    """The state saved by :func:`save_state` at ``path`` (tensors on the CPU)."""
    with safe_open(str(path), framework="pt") as handle:
        structure = json.loads(handle.metadata()["structure"])
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    return _join(structure, tensors)
