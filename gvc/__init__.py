"""GVC: a generative video codec built on codebook-driven stochastic rectified flow."""

from ._version import __version__

__all__ = ["__version__"]
