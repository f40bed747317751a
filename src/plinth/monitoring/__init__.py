"""Monitoring: compare what a model sees in production with what it was trained on."""
