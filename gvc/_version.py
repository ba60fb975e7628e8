"""The package version: a ground-floor module (no imports), readable from every layer, container/ included."""

__version__ = "0.1.0"
