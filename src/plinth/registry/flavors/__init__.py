"""Flavors: how each kind of model is saved in its library's own format and loaded back."""
