"""The template method shared by every iterative L∞ transfer attack in this package.

Design after TransferAttack (GitHub ``Trustworthy-AI-Group/TransferAttack``): one loop,
:meth:`TransferAttack.__call__`, calls small hooks that each method overrides —

- :meth:`~TransferAttack.prepare` once per call (e.g. ILA's baseline attack),
- :meth:`~TransferAttack.lookahead` the point where the gradient is taken (NI),
- :meth:`~TransferAttack.transform` the input transformation (DI, SI, Admix; may return ``k``
  transformed copies of the batch, stacked along dimension 0),
- :meth:`~TransferAttack.objective` the loss to ascend (cross-entropy; ILA's projection),
- :meth:`~TransferAttack.gradient` the gradient at the current iterate (VMI adds its variance,
  TI smooths it),
- :meth:`~TransferAttack.update_momentum` how gradients accumulate (I-FGSM: none; MI: L1-normalised
  momentum),
- :meth:`~TransferAttack.update` the signed step, projected onto the ε-ball and [0, 1].

Threat model: an untargeted (or targeted) L∞ attack with budget ``eps`` on images in [0, 1],
crafted with full gradient access to a *surrogate* model and then sent, unchanged, to black-box
target models. Images are float ``[N, C, H, W]`` in [0, 1]; the surrogate takes [0, 1] inputs
(normalisation lives inside it) and returns logits; everything runs on the surrogate's device.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from ...runtime import eval_mode


class TransferAttack:
    """Iterative sign-gradient attack; subclasses override hooks (I-FGSM when none is overridden).

    Args:
        model: the surrogate, ``[N, C, H, W]`` in [0, 1] → logits ``[N, classes]``.
        eps: L∞ budget in [0, 1] pixel units (default 8/255).
        steps: iterations (default 10).
        alpha: step size; default ``eps / steps`` (TransferAttack's convention).
        decay: momentum factor μ (used by the momentum family; 0 here).
        targeted: if true, ``labels`` are target classes and the loss is descended.
        seed: seeds the method's own random draws on every call (``None``: torch's global RNG).
    """

    def __init__(
        self,
        model: nn.Module,
        eps: float = 8 / 255,
        steps: int = 10,
        alpha: float | None = None,
        decay: float = 0.0,
        targeted: bool = False,
        seed: int | None = None,
    ):
        if not 0 < eps <= 1:
            raise ValueError(f"eps must be in (0, 1] (pixel units of [0, 1] images), got {eps}")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        alpha = eps / steps if alpha is None else alpha
        if alpha <= 0:
            raise ValueError(f"alpha must be positive, got {alpha}")
        if decay < 0:
            raise ValueError(f"decay must be >= 0, got {decay}")
        self.model, self.eps, self.steps, self.alpha = model, eps, steps, alpha
        self.decay, self.targeted, self.seed = decay, targeted, seed
        self.generator: torch.Generator | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(eps={self.eps:.5f}, steps={self.steps}, "
            f"alpha={self.alpha:.5f}, decay={self.decay}, targeted={self.targeted})"
        )

    # ----------------------------------------------------------------- the template method
    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Adversarial images ``[N, C, H, W]`` in [0, 1] with ``|x_adv - images|_∞ <= eps``.

        ``labels`` ``[N]`` are the true classes (untargeted) or the targets (``targeted=True``).
        """
        images, labels = self._validate(images, labels)
        if self.seed is not None:
            self.generator = torch.Generator(device=images.device).manual_seed(self.seed)
        with self.surrogate_context():
            self.prepare(images, labels)
            adv, momentum = images.clone(), torch.zeros_like(images)
            for _ in range(self.steps):
                grad = self.gradient(adv, labels, momentum)
                momentum = self.update_momentum(grad, momentum)
                adv = self.update(adv, images, momentum)
        self.generator = None
        return adv.detach()

    # ----------------------------------------------------------------- hooks
    @contextmanager
    def surrogate_context(self) -> Iterator[None]:
        """Runs around the whole attack: the surrogate in eval mode (SGM and ILA add hooks)."""
        with eval_mode(self.model):
            yield

    def prepare(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Per-call set-up before the first iteration (nothing by default)."""

    def lookahead(self, adv: torch.Tensor, momentum: torch.Tensor) -> torch.Tensor:
        """The point whose loss is differentiated (the iterate itself by default)."""
        return adv

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Input transformation ``[N, ...] → [k·N, ...]`` (identity by default)."""
        return x

    def objective(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Scalar loss to *ascend*: mean cross-entropy (negated when targeted)."""
        loss = F.cross_entropy(self.model(inputs), labels)
        return -loss if self.targeted else loss

    def loss_gradient(
        self, points: torch.Tensor, labels: torch.Tensor, momentum: torch.Tensor
    ) -> torch.Tensor:
        """∇ of :meth:`objective` at ``lookahead(points)`` through :meth:`transform`; same shape as
        ``points``."""
        x = points.detach().requires_grad_(True)
        inputs = self.transform(self.lookahead(x, momentum))
        copies, remainder = divmod(len(inputs), len(x))
        if remainder:
            raise ValueError(f"transform returned {len(inputs)} images for a batch of {len(x)}")
        return torch.autograd.grad(self.objective(inputs, labels.repeat(copies)), x)[0]

    def gradient(
        self, adv: torch.Tensor, labels: torch.Tensor, momentum: torch.Tensor
    ) -> torch.Tensor:
        """The attack direction before momentum (the loss gradient by default)."""
        return self.loss_gradient(adv, labels, momentum)

    def update_momentum(self, grad: torch.Tensor, momentum: torch.Tensor) -> torch.Tensor:
        """Accumulated direction (none: the raw gradient)."""
        return grad

    def update(
        self, adv: torch.Tensor, images: torch.Tensor, direction: torch.Tensor
    ) -> torch.Tensor:
        """Signed step of size ``alpha``, projected onto the ε-ball around ``images`` and
        onto [0, 1]."""
        adv = adv.detach() + self.alpha * direction.sign()
        delta = torch.clamp(adv - images, min=-self.eps, max=self.eps)
        return torch.clamp(images + delta, min=0, max=1).detach()

    # ----------------------------------------------------------------- helpers
    def _validate(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not torch.is_tensor(images) or images.ndim != 4 or not images.is_floating_point():
            raise ValueError(
                f"images must be a float tensor [N, C, H, W], got "
                f"{tuple(images.shape) if torch.is_tensor(images) else type(images).__name__}"
            )
        if len(images) == 0:
            raise ValueError("images is an empty batch")
        if images.min() < 0 or images.max() > 1:
            raise ValueError(
                f"images must lie in [0, 1], got range [{images.min():.3f}, {images.max():.3f}]"
            )
        if (
            not torch.is_tensor(labels)
            or labels.shape != (len(images),)
            or labels.is_floating_point()
        ):
            raise ValueError(
                f"labels must be an integer tensor [{len(images)}], got "
                f"{tuple(labels.shape) if torch.is_tensor(labels) else type(labels).__name__}"
            )
        return images.detach().to(self.device), labels.to(self.device)

    def rand(self, *shape: int) -> torch.Tensor:
        """Uniform [0, 1) draws on the surrogate's device from the attack's generator."""
        return torch.rand(shape, generator=self.generator, device=self.device)

    def randint(self, low: int, high: int) -> int:
        """One integer in ``[low, high)`` from the attack's generator."""
        return int(torch.randint(low, high, (1,), generator=self.generator, device=self.device))


def l1_normalise(grad: torch.Tensor) -> torch.Tensor:
    """``grad / mean(|grad|)`` per sample (MI-FGSM's normalisation), safe for an all-zero
    gradient."""
    scale = grad.abs().mean(dim=tuple(range(1, grad.ndim)), keepdim=True)
    return grad / scale.clamp_min(torch.finfo(grad.dtype).tiny)
