"""Backdoor defenses, one module per method: ZIP (:mod:`.zip`), and the CLIP defenses CleanCLIP,
TA-Cleaner and UBT, built by name with :func:`backdoorbook.defenses.registry.create_defense`."""
