"""The transfer experiment: craft on each surrogate, score on every target, tabulate.

Untargeted success on a target is the share of adversarial images it misclassifies; the
inputs are chosen so that every model classifies all clean images correctly, so success is
not inflated by clean errors. A (surrogate, target) pair is *white-box* when the target is
the surrogate (or a member of an ensemble surrogate); averages called "black-box" exclude those.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

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


def success_rate(
    model: nn.Module, adversarial: torch.Tensor, labels: torch.Tensor, batch_size: int = 500
) -> float:
    """Untargeted success (percent): share of ``adversarial`` images not predicted as ``labels``."""
    return 100.0 * (predict(model, adversarial, batch_size) != labels.cpu()).float().mean().item()


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
        seed: seed of every randomised attack. keep: adversarial images kept per run for figures.
        progress: show a progress bar (unless ``TQDM_DISABLE`` is set, as in the book build).

    Returns:
        a long table with one row per (method, ε, surrogate, target): ``method``, ``label``,
        ``family``, ``eps`` (in 1/255), ``surrogate``, ``target``, ``success`` (%), ``n``,
        ``white_box``, ``attack_s``; and
        ``{(method, eps, surrogate): first `keep` adversarial images}``.
    """
    method_kwargs, ensemble_members = method_kwargs or {}, ensemble_members or {}
    unknown = [m for m in methods if m not in ATTACKS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; registered: {', '.join(ATTACKS)}")
    runs = [
        (m, e, s)
        for m in methods
        for e in eps_values
        for s in surrogates
        if (m == "ensemble") == (s in ensemble_members)
    ]
    rows, examples = [], {}
    for method, eps, surrogate in progress_bar(runs, desc="transfer", progress=progress):
        kwargs = {
            "eps": eps,
            "seed": seed,
            **({} if method == "fgsm" else {"steps": steps}),
            **method_kwargs.get(method, {}),
        }
        start = time.perf_counter()
        adversarial = create_attack(method, surrogates[surrogate], **kwargs)(images, labels).cpu()
        seconds = time.perf_counter() - start
        if keep:
            examples[(method, round(eps * 255), surrogate)] = adversarial[:keep]
        spec = ATTACKS[method]
        for target, model in targets.items():
            white = target == surrogate or target in ensemble_members.get(surrogate, ())
            rows.append(
                {
                    "method": method,
                    "label": spec.label,
                    "family": spec.family,
                    "eps": round(eps * 255),
                    "surrogate": surrogate,
                    "target": target,
                    "success": success_rate(model, adversarial, labels),
                    "n": len(labels),
                    "white_box": white,
                    "attack_s": seconds,
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


def success_matrix(table: pd.DataFrame, method: str, eps: int) -> pd.DataFrame:
    """Surrogate × target success (%) of ``method`` at ``eps`` (in 1/255), in the table's order."""
    rows = table[(table.method == method) & (table.eps == eps)]
    if rows.empty:
        raise ValueError(f"no rows for method {method!r} at eps {eps}/255")
    return rows.pivot(index="surrogate", columns="target", values="success").reindex(
        index=list(dict.fromkeys(rows.surrogate)), columns=list(dict.fromkeys(rows.target))
    )
