"""Executors: where steps run (local worker processes now, a Ray cluster later)."""
