"""Attacks on vision models, one module per method (transfer attacks in :mod:`.transfer`)."""

from .transfer import ATTACKS as TRANSFER_ATTACKS
from .transfer import create_attack as create_transfer_attack

__all__ = ["TRANSFER_ATTACKS", "create_transfer_attack"]
