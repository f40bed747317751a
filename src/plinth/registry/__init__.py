"""The model registry: versions, aliases, signatures, flavors and safe loading."""
