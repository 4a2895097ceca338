"""Transfer attacks: L∞ adversarial examples crafted on a surrogate and sent to black-box targets.

Organised by the families of Gu et al., "A Survey on Transferability of Adversarial Examples
across Deep Neural Networks" (TMLR 2024, arXiv:2310.17626). Every method is a small override
of the template in :mod:`.base`; build them by name with :func:`create_attack`.
"""

from .admix import Admix
from .base import TransferAttack, l1_normalise
from .dim import DIM
from .ensemble import EnsembleMIFGSM, LogitEnsemble
from .experiment import (
    black_box_mean,
    fooled,
    per_image_success,
    select_agreed_correct,
    success_matrix,
    success_rate,
    transfer_table,
)
from .fgsm import FGSM, IFGSM
from .ila import ILA, middle_layer
from .mifgsm import MIFGSM
from .nifgsm import NIFGSM
from .registry import ATTACKS, FAMILIES, AttackSpec, create_attack
from .sgm import SGM, residual_branch_ends
from .sim import SIM
from .tim import TIM, gaussian_kernel
from .vmifgsm import VMIFGSM

__all__ = [
    "TransferAttack",
    "l1_normalise",
    "FGSM",
    "IFGSM",
    "MIFGSM",
    "NIFGSM",
    "VMIFGSM",
    "DIM",
    "TIM",
    "gaussian_kernel",
    "SIM",
    "Admix",
    "SGM",
    "residual_branch_ends",
    "ILA",
    "middle_layer",
    "LogitEnsemble",
    "EnsembleMIFGSM",
    "fooled",
    "per_image_success",
    "ATTACKS",
    "FAMILIES",
    "AttackSpec",
    "create_attack",
    "select_agreed_correct",
    "success_matrix",
    "success_rate",
    "transfer_table",
    "black_box_mean",
]
