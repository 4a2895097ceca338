"""The transfer experiment: craft on each surrogate, score on every target, tabulate.

Untargeted success on a target is the share of adversarial images it misclassifies; the
inputs are chosen so that every model classifies all clean images correctly, so success is
not inflated by clean errors. A (surrogate, target) pair is *white-box* when the target is
the surrogate (or a member of an ensemble surrogate); averages called "black-box" exclude those.

Every row of the table also keeps its per-image outcomes (``fooled``), so that two methods run
on the same images can be compared image by image (paired intervals, :mod:`backdoorbook.claims`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ...evaluation.classification import predict
from ...runtime import progress_bar
from .registry import ATTACKS, create_attack


def select_agreed_correct(
    models: Mapping[str, nn.Module],
    images: torch.Tensor,
    labels: torch.Tensor,
    n: int,
    batch_size: int = 500,
) -> torch.Tensor:
    """Indices of the first ``n`` images that *every* model classifies correctly (fewer if the pool
    runs out)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    correct = torch.ones(len(images), dtype=torch.bool)
    for model in models.values():
        correct &= predict(model, images, batch_size) == labels.cpu()
    index = correct.nonzero().flatten()[:n]
    if len(index) == 0:
        raise ValueError("no image is classified correctly by every model")
    return index


def fooled(
    model: nn.Module, adversarial: torch.Tensor, labels: torch.Tensor, batch_size: int = 500
) -> np.ndarray:
    """Per-image untargeted outcome: ``True`` where ``model`` does not predict ``labels``."""
    return (predict(model, adversarial, batch_size) != labels.cpu()).numpy()


def success_rate(
    model: nn.Module, adversarial: torch.Tensor, labels: torch.Tensor, batch_size: int = 500
) -> float:
    """Untargeted success (percent): share of ``adversarial`` images not predicted as ``labels``."""
    return 100.0 * float(fooled(model, adversarial, labels, batch_size).mean())


def transfer_table(
    methods: Sequence[str],
    surrogates: Mapping[str, nn.Module | Sequence[nn.Module]],
    targets: Mapping[str, nn.Module],
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    eps_values: Sequence[float],
    steps: int = 10,
    method_kwargs: Mapping[str, dict] | None = None,
    ensemble_members: Mapping[str, Sequence[str]] | None = None,
    surrogate_methods: Mapping[str, Sequence[str]] | None = None,
    seed: int = 0,
    keep: int = 0,
    progress: bool = True,
) -> tuple[pd.DataFrame, dict]:
    """Run every ``method`` from every surrogate at every ε and score the result on every target.

    Args:
        methods: registry names; ``"ensemble"`` runs only on the surrogates named in
            ``ensemble_members`` (their values are sequences of models), the others only on the
            rest.
        surrogates: name → model (or, for ensembles, name → list of models).
        targets: name → model, each taking [0, 1] images.
        images, labels: ``[N, C, H, W]`` in [0, 1] and ``[N]``, correctly classified by all models.
        eps_values: L∞ budgets; ``steps``: iterations (FGSM takes one step).
        method_kwargs: extra constructor arguments per method
            (e.g. ``{"vmifgsm": {"samples": 5}}``).
        ensemble_members: ensemble surrogate name → names of the targets it contains (white-box).
        surrogate_methods: surrogate name → the only methods run from it (default: all).
        seed: seed of every randomised attack. keep: adversarial images kept per run for figures.
        progress: show a progress bar (unless ``TQDM_DISABLE`` is set, as in the book build).

    Returns:
        a long table with one row per (method, ε, surrogate, target): ``method``, ``label``,
        ``family``, ``eps`` (in 1/255), ``surrogate``, ``target``, ``success`` (%), ``n``,
        ``white_box``, ``attack_s`` (wall-clock seconds to craft), ``attack_cpu_s`` (the
        process's CPU seconds, which a loaded machine inflates less) and ``fooled`` (the
        per-image outcomes, a boolean array in the order of ``images``); and
        ``{(method, eps, surrogate): first `keep` adversarial images}``.
    """
    method_kwargs, ensemble_members = method_kwargs or {}, ensemble_members or {}
    surrogate_methods = surrogate_methods or {}
    unknown = [m for m in methods if m not in ATTACKS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; registered: {', '.join(ATTACKS)}")
    stray = sorted(set(surrogate_methods) - set(surrogates))
    if stray:
        raise ValueError(f"surrogate_methods names surrogates that are not given: {stray}")
    runs = [
        (m, e, s)
        for m in methods
        for e in eps_values
        for s in surrogates
        if (m == "ensemble") == (s in ensemble_members) and m in surrogate_methods.get(s, methods)
    ]
    rows, examples = [], {}
    for method, eps, surrogate in progress_bar(runs, desc="transfer", progress=progress):
        kwargs = {
            "eps": eps,
            "seed": seed,
            **({} if method == "fgsm" else {"steps": steps}),
            **method_kwargs.get(method, {}),
        }
        start, cpu_start = time.perf_counter(), time.process_time()
        adversarial = create_attack(method, surrogates[surrogate], **kwargs)(images, labels).cpu()
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        if keep:
            examples[(method, round(eps * 255), surrogate)] = adversarial[:keep]
        spec = ATTACKS[method]
        for target, model in targets.items():
            white = target == surrogate or target in ensemble_members.get(surrogate, ())
            outcome = fooled(model, adversarial, labels)
            rows.append(
                {
                    "method": method,
                    "label": spec.label,
                    "family": spec.family,
                    "eps": round(eps * 255),
                    "surrogate": surrogate,
                    "target": target,
                    "success": 100.0 * float(outcome.mean()),
                    "n": len(labels),
                    "white_box": white,
                    "attack_s": seconds,
                    "attack_cpu_s": cpu_seconds,
                    "fooled": outcome,
                }
            )
    return pd.DataFrame(rows), examples


def black_box_mean(table: pd.DataFrame, targets: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean black-box success per (method, ε) over all non-white-box pairs (optionally only
    ``targets``).

    Returns a table indexed by method label with one column per ε.
    """
    rows = table[~table.white_box]
    if targets is not None:
        rows = rows[rows.target.isin(targets)]
    order = list(dict.fromkeys(table.label))
    return rows.pivot_table(index="label", columns="eps", values="success", aggfunc="mean").reindex(
        order
    )


def per_image_success(
    table: pd.DataFrame,
    method: str | Sequence[str],
    eps: int,
    *,
    surrogates: Sequence[str] | None = None,
    targets: Sequence[str] | None = None,
) -> np.ndarray:
    """Per-image mean success (percent) of ``method`` at ``eps`` (in 1/255) over its black-box
    (surrogate, target) pairs, optionally only from ``surrogates`` and only on ``targets``.

    ``method`` may name several methods, whose pairs are pooled. The mean of the result is the
    black-box mean success of those pairs (:func:`black_box_mean`); two calls on one table give
    paired samples, one value per attacked image.
    """
    methods = [method] if isinstance(method, str) else list(method)
    rows = table[table.method.isin(methods) & (table.eps == eps) & ~table.white_box]
    if surrogates is not None:
        rows = rows[rows.surrogate.isin(surrogates)]
    if targets is not None:
        rows = rows[rows.target.isin(targets)]
    if rows.empty:
        raise ValueError(f"no black-box pairs of {methods} at eps {eps}/255 in the selection")
    return 100.0 * np.stack(list(rows.fooled)).mean(axis=0)


def success_matrix(table: pd.DataFrame, method: str, eps: int) -> pd.DataFrame:
    """Surrogate × target success (%) of ``method`` at ``eps`` (in 1/255), in the table's order."""
    rows = table[(table.method == method) & (table.eps == eps)]
    if rows.empty:
        raise ValueError(f"no rows for method {method!r} at eps {eps}/255")
    return rows.pivot(index="surrogate", columns="target", values="success").reindex(
        index=list(dict.fromkeys(rows.surrogate)), columns=list(dict.fromkeys(rows.target))
    )
