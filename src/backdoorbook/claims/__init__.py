"""Claims a referee would sign: effects with 95 % intervals against thresholds fixed in code.

- :mod:`.intervals`: Wilson, Newcombe and seeded paired bootstrap intervals;
- :mod:`.core`: :class:`~.core.Test`, :class:`~.core.Claim`, :func:`~.core.make_claim` and the
  three verdicts (reproduced, not reproduced, inconclusive).
"""
