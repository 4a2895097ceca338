"""Registry of the transfer attacks and the single factory :func:`create_attack` (timm style).

Each entry names the class, a display label and the survey's family (Gu et al., "A Survey on
Transferability of Adversarial Examples across Deep Neural Networks", TMLR 2024,
arXiv:2310.17626): gradient baselines, optimisation, input augmentation, loss objective, model
component (surrogate refinement) and ensemble.
"""

from __future__ import annotations

from dataclasses import dataclass

from .admix import Admix
from .base import TransferAttack
from .dim import DIM
from .ensemble import EnsembleMIFGSM
from .fgsm import FGSM, IFGSM
from .ila import ILA
from .mifgsm import MIFGSM
from .nifgsm import NIFGSM
from .sgm import SGM
from .sim import SIM
from .tim import TIM
from .vmifgsm import VMIFGSM

FAMILIES = ("baseline", "optimisation", "augmentation", "loss", "model", "ensemble")


@dataclass(frozen=True)
class AttackSpec:
    """A registered attack: its class, a display label and its family in the survey's taxonomy."""

    cls: type[TransferAttack]
    label: str
    family: str


ATTACKS: dict[str, AttackSpec] = {
    "fgsm": AttackSpec(FGSM, "FGSM", "baseline"),
    "ifgsm": AttackSpec(IFGSM, "I-FGSM", "baseline"),
    "mifgsm": AttackSpec(MIFGSM, "MI-FGSM", "optimisation"),
    "nifgsm": AttackSpec(NIFGSM, "NI-FGSM", "optimisation"),
    "vmifgsm": AttackSpec(VMIFGSM, "VMI-FGSM", "optimisation"),
    "dim": AttackSpec(DIM, "DI-MI", "augmentation"),
    "tim": AttackSpec(TIM, "TI-MI", "augmentation"),
    "sim": AttackSpec(SIM, "SI-MI", "augmentation"),
    "admix": AttackSpec(Admix, "Admix-MI", "augmentation"),
    "ila": AttackSpec(ILA, "ILA", "loss"),
    "sgm": AttackSpec(SGM, "SGM-MI", "model"),
    "ensemble": AttackSpec(EnsembleMIFGSM, "Ens-MI", "ensemble"),
}


def create_attack(name: str, model, **kwargs) -> TransferAttack:
    """Build registered attack ``name`` on surrogate ``model`` (for ``"ensemble"``: a sequence of
    models).

    ``kwargs`` go to the class (``eps``, ``steps``, ``alpha``, ``targeted``, ``seed`` and the
    method's own hyper-parameters). Unknown names raise ``ValueError`` listing the registry.
    """
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; registered attacks: {', '.join(ATTACKS)}")
    return ATTACKS[name].cls(model, **kwargs)
