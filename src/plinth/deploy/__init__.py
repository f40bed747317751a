"""Deploying models and flows: environment locks and their export, container images, Kubernetes manifests."""
