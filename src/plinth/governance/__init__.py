"""Governance: the audit log's integrity, lineage queries, erasure by subject and retention."""
