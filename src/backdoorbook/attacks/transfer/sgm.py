"""SGM: Wu et al., "Skip Connections Matter: On the Transferability of Adversarial Examples
Generated with ResNets", ICLR 2020, arXiv:2002.05990.

In a residual block ``z' = z + f(z)`` the gradient is ``∂z'/∂z = I + ∂f/∂z``. The Skip Gradient
Method multiplies the gradient through the residual branches by a decay ``γ ∈ (0, 1]``, so more
of the gradient flows through the skip connections, which yields more transferable directions.

Which blocks: every block except the first of each stage. The authors' code (GitHub
``csdongxian/skip-connections-matter`` ``utils_sgm.py``, reused by TransferAttack) puts a
backward hook ``γ·grad`` on every ReLU module whose name does not contain ``0.relu``, which
leaves out block 0 of every stage. In a basic-block ResNet one ReLU module serves both the
branch (after ``bn1``) and the sum, so per block the branch gets ``γ²`` and the skip ``γ``:
a factor γ on the branch *relative to* the skip, times γ for the whole block. That overall
factor, the hooked stem ReLU and the code's division of each block's gradient by its standard
deviation over the batch multiply every gradient of the batch by one positive number, which
MI-FGSM's per-sample L1 normalisation removes; the relative factor is what changes the attack.
The authors use ``√γ`` per ReLU for bottleneck ResNets and DenseNets (two ReLUs per branch) and
plain ``γ`` for basic-block ResNets, which is what our CIFAR ResNets are.

Implementation: the CIFAR ResNets call ReLU as a function, so instead of ReLU modules a forward
hook on the *last layer of the branch* (``bn2`` of
:class:`backdoorbook.models.cifar_resnet.BasicBlock`) replaces its output ``o`` by
``o.detach() + γ·(o − o.detach())``: the forward value is exactly ``o`` (predictions are
unchanged) and the backward pass multiplies the branch's gradient by γ. The hooks are removed
when the call returns, so the surrogate is left as it was. Combined with momentum.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ...models.cifar_resnet import BasicBlock
from .mifgsm import MIFGSM


def residual_branch_ends(model: nn.Module) -> list[nn.Module]:
    """The module that ends the residual branch of every block SGM decays: ``bn2`` of each CIFAR
    ResNet ``BasicBlock`` except the first block of each stage (``nn.Sequential``)."""
    return [
        block.bn2
        for stage in model.modules()
        if isinstance(stage, nn.Sequential)
        for block in list(stage)[1:]
        if isinstance(block, BasicBlock)
    ]


def _decay_branch_gradient(gamma: float):
    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        frozen = output.detach()
        return frozen + gamma * (output - frozen)

    return hook


class SGM(MIFGSM):
    """Skip-gradient MI-FGSM for residual surrogates.

    Args:
        gamma: γ, the gradient decay on each residual branch but those of the first block of
            each stage (default 0.2, the paper's setting for ResNet surrogates).
        Other arguments as :class:`~.mifgsm.MIFGSM`. Raises ``ValueError`` if the surrogate has no
        stage of two or more residual blocks.
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
            raise ValueError(
                "SGM needs a residual surrogate with a stage of two or more BasicBlocks "
                "(the first block of each stage is not decayed)"
            )
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
