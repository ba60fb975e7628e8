"""Entropy coding of GVC payloads."""
