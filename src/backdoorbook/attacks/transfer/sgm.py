"""SGM: Wu et al., "Skip Connections Matter: On the Transferability of Adversarial Examples
Generated with ResNets", ICLR 2020, arXiv:2002.05990.

In a residual block ``z' = z + f(z)`` the gradient is ``∂z'/∂z = I + ∂f/∂z``. The Skip Gradient
Method multiplies the gradient through every residual branch by a decay ``γ ∈ (0, 1]``, so more
of the gradient flows through the skip connections, which yields more transferable directions.

Implementation: while the attack runs, a forward hook on the *last layer of each residual
branch* (``bn2`` of :class:`backdoorbook.models.cifar_resnet.BasicBlock`) replaces its output
``o`` by ``o.detach() + γ·(o − o.detach())``: the forward value is exactly ``o`` (predictions
are unchanged) and the backward pass multiplies the branch's gradient by γ. The hooks are
removed when the call returns, so the surrogate is left as it was. Combined with momentum.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ...models.cifar_resnet import BasicBlock
from .mifgsm import MIFGSM


def residual_branch_ends(model: nn.Module) -> list[nn.Module]:
    """The module that ends each residual branch of ``model`` (``bn2`` of every CIFAR ResNet
    ``BasicBlock``)."""
    return [module.bn2 for module in model.modules() if isinstance(module, BasicBlock)]


def _decay_branch_gradient(gamma: float):
    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        frozen = output.detach()
        return frozen + gamma * (output - frozen)

    return hook


class SGM(MIFGSM):
    """Skip-gradient MI-FGSM for residual surrogates.

    Args:
        gamma: γ, the gradient decay on each residual branch (default 0.2, the paper's setting
            for ResNet surrogates).
        Other arguments as :class:`~.mifgsm.MIFGSM`. Raises ``ValueError`` if the surrogate has no
        residual blocks to hook.
    """

    def __init__(
        self,
        model: nn.Module,
        eps: float = 8 / 255,
        steps: int = 10,
        alpha: float | None = None,
        decay: float = 1.0,
        gamma: float = 0.2,
        targeted: bool = False,
        seed: int | None = None,
    ):
        super().__init__(
            model, eps=eps, steps=steps, alpha=alpha, decay=decay, targeted=targeted, seed=seed
        )
        if not 0 < gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {gamma}")
        if not residual_branch_ends(model):
            raise ValueError("SGM needs a residual surrogate: no BasicBlock found in the model")
        self.gamma = gamma

    @contextmanager
    def surrogate_context(self) -> Iterator[None]:
        handles = [
            module.register_forward_hook(_decay_branch_gradient(self.gamma))
            for module in residual_branch_ends(self.model)
        ]
        try:
            with super().surrogate_context():
                yield
        finally:
            for handle in handles:
                handle.remove()
