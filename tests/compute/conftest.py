"""Ray tests here and elsewhere run on one xdist worker (see tests/ray_cluster.py)."""

from ray_cluster import pytest_collection_modifyitems as pytest_collection_modifyitems
