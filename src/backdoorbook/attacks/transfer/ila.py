"""ILA: Huang et al., "Enhancing Adversarial Example Transferability with an Intermediate Level
Attack", ICCV 2019, arXiv:1907.10823.

A loss-objective method. A baseline attack (MI-FGSM with μ = 1, the baseline of TransferAttack's
ILA, ``Trustworthy-AI-Group/TransferAttack`` ``advanced_objective/ila.py``) first gives a
reference adversarial example x'; its feature shift at an intermediate layer,
``Δ' = F_l(x') − F_l(x)``, is a guide direction. ILA then restarts from ``x`` and maximises the
projection of the current feature shift on that direction, ``⟨F_l(x_adv) − F_l(x), Δ'/‖Δ'‖⟩``
(per sample, summed), with plain sign steps (no momentum). TransferAttack's loss flattens the
whole batch into one vector, ``⟨Δ, Δ'⟩ / ‖Δ'‖²``; its gradient for each image is ours times a
positive number, so the sign steps are the same. The layer is by default the block in the middle
of the network (:func:`middle_layer`); mid-depth layers transfer best.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ...models.wrappers import Normalised
from .base import TransferAttack
from .mifgsm import MIFGSM


def middle_layer(model: nn.Module) -> str:
    """Dotted name of the middle entry of the network, TransferAttack's choice of ILA layer.

    The top-level children of the network (inside a :class:`Normalised` wrapper) are listed in
    order, each ``nn.Sequential`` expanded into its blocks, and entry ``⌊count / 2⌋`` is taken.
    For the CIFAR ResNet-(6n+2) (conv1, bn1, three stages of n blocks, linear) and odd n this is
    the middle block of stage 2: ResNet-20 → ``model.layer2.1``, ResNet-56 → ``model.layer2.4``.
    """
    prefix, network = ("model.", model.model) if isinstance(model, Normalised) else ("", model)
    names = []
    for name, child in network.named_children():
        if isinstance(child, nn.Sequential):
            names += [f"{name}.{index}" for index in range(len(child))]
        else:
            names.append(name)
    if not names:
        raise ValueError(f"{type(network).__name__} has no child modules to choose an ILA layer")
    return prefix + names[len(names) // 2]


class ILA(TransferAttack):
    """Intermediate Level Attack (projection loss) on top of an MI-FGSM baseline.

    Args:
        layer: dotted name of the intermediate module in ``model`` (default: :func:`middle_layer`;
            e.g. ``"model.layer2"`` for the output of a wrapped CIFAR ResNet's middle stage).
        baseline_steps: iterations of the MI-FGSM baseline (default: ``steps``).
        decay: momentum μ of the baseline (1.0); the ILA steps use none.
        Other arguments as :class:`TransferAttack`; ``alpha`` is the step of both phases and
        ``targeted`` only affects the baseline.
    """

    def __init__(
        self,
        model: nn.Module,
        eps: float = 8 / 255,
        steps: int = 10,
        alpha: float | None = None,
        decay: float = 1.0,
        layer: str | None = None,
        baseline_steps: int | None = None,
        targeted: bool = False,
        seed: int | None = None,
    ):
        super().__init__(
            model, eps=eps, steps=steps, alpha=alpha, decay=decay, targeted=targeted, seed=seed
        )
        layer = middle_layer(model) if layer is None else layer
        try:
            self.layer = model.get_submodule(layer)
        except AttributeError as err:
            raise ValueError(f"model has no module {layer!r} for ILA: {err}") from err
        self.layer_name = layer
        self.baseline = MIFGSM(
            model,
            eps=eps,
            steps=baseline_steps or steps,
            alpha=self.alpha,
            decay=decay,
            targeted=targeted,
        )
        self._features: torch.Tensor | None = None
        self._clean: torch.Tensor | None = None
        self._guide: torch.Tensor | None = None

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, layer={self.layer_name!r})"

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
