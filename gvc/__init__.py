"""GVC: a generative video codec built on codebook-driven stochastic rectified flow."""

__version__ = "0.1.0"
