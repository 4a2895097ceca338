"""backdoorbook: the shared library behind the compendium's chapters.

Images are float tensors in [0, 1], NCHW; normalisation lives inside model wrappers.
"""

__version__ = "0.1.0"
