"""Attacks on vision models, one module per method; transfer attacks in :mod:`.transfer`,
built by name with :func:`backdoorbook.attacks.transfer.create_attack`."""
