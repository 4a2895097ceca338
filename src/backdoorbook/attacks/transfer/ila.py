"""ILA: Huang et al., "Enhancing Adversarial Example Transferability with an Intermediate Level
Attack", ICCV 2019, arXiv:1907.10823.

A loss-objective method. A baseline attack (I-FGSM, as in the paper) first gives a reference
adversarial example x'; its feature shift at an intermediate layer, ``Δ' = F_l(x') − F_l(x)``,
is a guide direction. ILA then restarts from ``x`` and maximises the projection of the current
feature shift on that direction, ``⟨F_l(x_adv) − F_l(x), Δ' / ‖Δ'‖⟩`` (per sample, summed),
with I-FGSM steps. Mid-depth layers transfer best.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .base import TransferAttack
from .fgsm import IFGSM


class ILA(TransferAttack):
    """Intermediate Level Attack (projection loss) on top of an I-FGSM baseline.

    Args:
        layer: dotted name of the intermediate module in ``model`` (default ``"model.layer2"``,
            the middle stage of a wrapped CIFAR ResNet).
        baseline_steps: iterations of the I-FGSM baseline (default: ``steps``).
        Other arguments as :class:`TransferAttack`; ``targeted`` only affects the baseline.
    """

    def __init__(
        self,
        model: nn.Module,
        eps: float = 8 / 255,
        steps: int = 10,
        alpha: float | None = None,
        layer: str = "model.layer2",
        baseline_steps: int | None = None,
        targeted: bool = False,
        seed: int | None = None,
    ):
        super().__init__(model, eps=eps, steps=steps, alpha=alpha, targeted=targeted, seed=seed)
        try:
            self.layer = model.get_submodule(layer)
        except AttributeError as err:
            raise ValueError(f"model has no module {layer!r} for ILA: {err}") from err
        self.baseline = IFGSM(model, eps=eps, steps=baseline_steps or steps, targeted=targeted)
        self._features: torch.Tensor | None = None
        self._clean: torch.Tensor | None = None
        self._guide: torch.Tensor | None = None

    def _record(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self._features = output

    def _features_of(self, x: torch.Tensor) -> torch.Tensor:
        self.model(x)
        return self._features.flatten(1)

    @contextmanager
    def surrogate_context(self) -> Iterator[None]:
        """Records the layer's output on every forward pass while the attack runs."""
        handle = self.layer.register_forward_hook(self._record)
        try:
            with super().surrogate_context():
                yield
        finally:
            handle.remove()
            self._features = self._clean = self._guide = None

    def prepare(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        reference = self.baseline(images, labels)
        with torch.no_grad():
            self._clean = self._features_of(images)
            shift = self._features_of(reference) - self._clean
        self._guide = shift / shift.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def objective(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        copies = len(inputs) // len(self._clean)
        shift = self._features_of(inputs) - self._clean.repeat(copies, 1)
        return (shift * self._guide.repeat(copies, 1)).sum()
