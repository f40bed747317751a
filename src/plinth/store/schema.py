"""Tables of the metadata store (SQLAlchemy Core). Migrations in `migrations/` create them.

Runs have a string id (what users see) and an integer key used by the hot metric tables,
which are keyed by integers so SQLite can store them WITHOUT ROWID.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY, so BigInteger becomes INTEGER there.
BigId = BigInteger().with_variant(Integer(), "sqlite")

experiments = Table(
    "experiments",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("tags", Text, nullable=False, default="{}"),
)

environments = Table(
    "environments",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("body", Text, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("key", BigId, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("experiment_id", String(32), ForeignKey("experiments.id"), nullable=False),
    Column("name", String(256), nullable=False),
    Column("status", String(16), nullable=False),
    Column("user_name", String(256), nullable=False),
    Column("start_ms", BigInteger, nullable=False),
    Column("end_ms", BigInteger),
    Column("heartbeat_ms", BigInteger),
    Column("heartbeat_s", Float, nullable=False),
    Column("error", Text),
    Column("env_digest", String(64), ForeignKey("environments.digest")),
    Index("ix_runs_experiment_start", "experiment_id", "start_ms"),
    Index("ix_runs_start", "start_ms", "key"),
    Index("ix_runs_status", "status"),
)

params = Table(
    "params",
    metadata,
    Column("run_key", BigInteger, ForeignKey("runs.key", ondelete="CASCADE"), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("value", Text, nullable=False),
    Column("value_num", Float),
    Index("ix_params_key_value", "key", "value"),
    # numbers only: a text param (most of them) writes no entry here
    Index(
        "ix_params_key_num",
        "key",
        "value_num",
        sqlite_where=text("value_num IS NOT NULL"),
        postgresql_where=text("value_num IS NOT NULL"),
    ),
    sqlite_with_rowid=False,
)

tags = Table(
    "tags",
    metadata,
    Column("run_key", BigInteger, ForeignKey("runs.key", ondelete="CASCADE"), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_tags_key_value", "key", "value"),
    sqlite_with_rowid=False,
)

metric_keys = Table(
    "metric_keys",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False, unique=True),
)

metrics = Table(
    "metrics",
    metadata,
    Column("run_key", BigInteger, primary_key=True),
    Column("key_id", BigInteger, primary_key=True),
    Column("step", BigInteger, primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("ts_ms", BigInteger, nullable=False),
    Column("value", Float),  # NULL stands for NaN (SQLite cannot store NaN); ±inf are stored as is
    sqlite_with_rowid=False,
)

latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_key", BigInteger, primary_key=True),
    Column("key_id", BigInteger, primary_key=True),
    Column("step", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("value", Float),  # NULL stands for NaN, as in `metrics`
    Index("ix_latest_key_value", "key_id", "value"),
    sqlite_with_rowid=False,
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("run_key", BigInteger, ForeignKey("runs.key", ondelete="CASCADE"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Index("ix_artifacts_digest", "digest"),
)

datasets = Table(
    "dataset_versions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("version", Integer, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("schema", Text, nullable=False),
    Column("profile", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    UniqueConstraint("name", "version", name="uq_dataset_name_version"),
    UniqueConstraint("name", "digest", name="uq_dataset_name_digest"),
    Index("ix_dataset_digest", "digest"),
)

lineage = Table(
    "lineage_edges",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("src_type", String(32), nullable=False),
    Column("src_id", String(64), nullable=False),
    Column("relation", String(32), nullable=False),
    Column("dst_type", String(32), nullable=False),
    Column("dst_id", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("attributes", Text, nullable=False),
    UniqueConstraint("src_type", "src_id", "relation", "dst_type", "dst_id", name="uq_edge"),
    Index("ix_lineage_dst", "dst_type", "dst_id"),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=False),
    Column("time_ms", BigInteger, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("action", String(64), nullable=False),
    Column("entity_type", String(32), nullable=False),
    Column("entity_id", String(128), nullable=False),
    Column("before", Text),
    Column("after", Text),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("mac", String(64)),  # HMAC-SHA256 of `hash` under the store's audit key
    Index("ix_audit_entity_id", "entity_id", "seq"),
    Index("ix_audit_action", "action", "seq"),
    Index("ix_audit_actor", "actor", "seq", postgresql_ops={"actor": "varchar_pattern_ops"}),
)

audit_head = Table(  # the chain's newest event, keyed: a cut tail no longer matches it
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("mac", String(64), nullable=False),
    Column("time_ms", BigInteger, nullable=False),
)

registered_models = Table(
    "registered_models",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("description", Text, nullable=False, default=""),
    Column("creator", String(256), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(256), ForeignKey("registered_models.name"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("flavor", String(32), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("signature", Text),
    Column("environment", Text, nullable=False),
    Column("manifest_signature", Text),  # base64 Ed25519 signature of the manifest
    Column("signing_key", String(64)),  # fingerprint of the key that signed it
    Column("run_id", String(32)),
    Column("description", Text, nullable=False, default=""),
    Column("creator", String(256), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("source", Text),  # where its files came from, e.g. an MLflow model's artifact URI
    UniqueConstraint("name", "version", name="uq_model_name_version"),
    Index("ix_model_versions_run", "run_id"),
)

model_version_tags = Table(
    "model_version_tags",
    metadata,
    Column("model_version_id", String(32), ForeignKey("model_versions.id"), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("value", Text, nullable=False),
)

registered_model_tags = Table(
    "registered_model_tags",
    metadata,
    Column("name", String(256), ForeignKey("registered_models.name"), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("value", Text, nullable=False),
)

model_files = Table(
    "model_files",
    metadata,
    Column("model_version_id", String(32), ForeignKey("model_versions.id"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Index("ix_model_files_digest", "digest"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("name", String(256), ForeignKey("registered_models.name"), primary_key=True),
    Column("alias", String(256), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

# MLflow 3's logged models: their files are artifacts of `run_id` under models/{id}/
logged_models = Table(
    "logged_models",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("experiment_id", String(32), ForeignKey("experiments.id"), nullable=False),
    Column("name", String(256), nullable=False),
    Column("run_id", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("model_type", String(256), nullable=False),
    Column("source_run_id", String(32)),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    Column("params", Text, nullable=False),  # JSON object of text values
    Index("ix_logged_models_experiment", "experiment_id", "created_ms"),
    Index("ix_logged_models_run", "run_id", "created_ms"),
    Index("ix_logged_models_name", "name", "created_ms"),
)

logged_model_tags = Table(
    "logged_model_tags",
    metadata,
    Column("model_id", String(64), ForeignKey("logged_models.id"), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("value", Text, nullable=False),
)

flow_runs = Table(
    "flow_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("flow", String(256), nullable=False),
    Column("status", String(16), nullable=False),
    Column("params", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("start_ms", BigInteger, nullable=False),
    Column("end_ms", BigInteger),
    Column("result_digest", String(64)),
    Column("error", Text),
    Column("resumed_from", String(32)),
    Column("driver_host", String(256)),
    Column("driver_pid", Integer),
    Column("driver_ns", String(128)),
    Index("ix_flow_runs_flow", "flow", "start_ms"),
)

step_runs = Table(
    "step_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("flow_run_id", String(32), ForeignKey("flow_runs.id"), nullable=False),
    Column("call", String(256), nullable=False),
    Column("step", String(256), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("start_ms", BigInteger),
    Column("end_ms", BigInteger),
    Column("input_digest", String(64), nullable=False),
    Column("cache_key", String(64)),
    Column("result_digest", String(64)),
    Column("log_digest", String(64)),
    Column("error", Text),
    Column("resources", Text, nullable=False),
    Column("usage", Text, nullable=False),
    Column("reused_from", String(32)),
    UniqueConstraint("flow_run_id", "call", name="uq_step_call"),
    Index("ix_step_runs_cache", "cache_key", "status"),
)

schedule_triggers = Table(
    "schedule_triggers",
    metadata,
    Column("flow", String(256), primary_key=True),
    Column("scheduled_ms", BigInteger, primary_key=True),
    Column("status", String(16), nullable=False),
    Column("flow_run_id", String(32)),
    Column("created_ms", BigInteger, nullable=False),
)

prediction_logs = Table(
    "prediction_logs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("request_id", String(128), nullable=False),
    Column("model", String(256), nullable=False),
    Column("version", Integer, nullable=False),
    Column("route", String(16), nullable=False),
    Column("time_ms", BigInteger, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("subject_id", String(256)),
    Column("inputs", Text),  # JSON as logged; NULL once the request is in a segment
    Column("outputs", Text),
    Column("status", Integer, nullable=False, server_default="200"),  # HTTP status of the answer
    Column("n_rows", Integer, nullable=False, server_default="1"),  # rows in the request
    Column("part_id", BigInteger),  # the part of a prediction segment holding its inputs and outputs
    Column("part_row", BigInteger),  # its place in that part
    Index("ix_predictions_model_time", "model", "time_ms"),
    Index("ix_predictions_subject", "subject_id"),
    Index("ix_predictions_request", "request_id"),
    # requests not yet in a segment, which compaction gathers and reads parse
    Index(
        "ix_predictions_unsegmented",
        "model",
        "time_ms",
        sqlite_where=text("part_id IS NULL"),
        postgresql_where=text("part_id IS NULL"),
    ),
)

# A model's logged requests as columns: one Arrow IPC blob each (plinth.store.segments).
prediction_segments = Table(
    "prediction_segments",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("model", String(256), nullable=False),
    Column("start_ms", BigInteger, nullable=False),  # time of its oldest request
    Column("end_ms", BigInteger, nullable=False),  # time of its newest request
    Column("requests", BigInteger, nullable=False),
    Column("rows", BigInteger, nullable=False),  # table rows (one per row a request sent)
    Column("digest", String(64), nullable=False, unique=True),
    Column("size", BigInteger, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Index("ix_segments_model_time", "model", "start_ms", "end_ms"),
)

# The requests written together (one batch of logs, or logs gathered from rows) are a part: a
# segment holds parts, the request with part_row r of a part being row `base + r` (its `seq`).
# Merging or rewriting segments moves parts, not each request's row.
prediction_parts = Table(
    "prediction_parts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("segment_id", BigInteger, nullable=False),
    Column("base", BigInteger, nullable=False),
    Index("ix_parts_segment", "segment_id"),
)

# Segment blobs no segment refers to: being written ("writing", recorded before the bytes are
# stored) or replaced and due for deletion ("dropped"); whoever finds one left over deletes it.
prediction_segment_blobs = Table(
    "prediction_segment_blobs",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("time_ms", BigInteger, nullable=False),
)

labels = Table(
    "labels",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("model", String(256), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("label", Text, nullable=False),  # JSON: one value, or a list for multi-row requests
    Column("time_ms", BigInteger, nullable=False),
    Column("subject_id", String(256)),
    UniqueConstraint("model", "request_id", name="uq_label_request"),
    Index("ix_labels_model_time", "model", "time_ms"),
    Index("ix_labels_subject", "subject_id"),
)

monitoring_references = Table(
    "monitoring_references",
    metadata,
    Column("model", String(256), primary_key=True),
    Column("dataset_version_id", String(32), nullable=False),
    Column("set_by", String(256), nullable=False),
    Column("set_ms", BigInteger, nullable=False),
)

alert_states = Table(
    "alert_states",
    metadata,
    Column("rule", String(256), primary_key=True),
    Column("target", String(512), primary_key=True),  # what the rule was evaluated on
    Column("breaches", Integer, nullable=False),  # consecutive windows over the threshold
    Column("firing", Integer, nullable=False),  # 1 while an incident is open
    Column("incident_id", String(32)),
    Column("opened_ms", BigInteger),
    Column("value", Float),
    Column("updated_ms", BigInteger, nullable=False),
)

# identity: used in the default workspace's database only (every workspace's has the tables)
workspaces = Table(
    "workspaces",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("description", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False),
)

principals = Table(
    "principals",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("kind", String(16), nullable=False),  # "user" or "service"
    Column("created_ms", BigInteger, nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("principal", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("workspace", String(32)),  # the token's home workspace
    Column("role", String(16)),  # caps the principal's role in `workspace`
    Column("token_hash", String(64), nullable=False),  # sha256 of the secret; never the secret
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger),
    Column("last_used_ms", BigInteger),
    Column("revoked_ms", BigInteger),
    Column("created_by", String(256), nullable=False),
    Column("purpose", String(16), nullable=False),
    UniqueConstraint("token_hash", name="uq_api_tokens_hash"),
    Index("ix_api_tokens_principal", "principal", "name"),
)

members = Table(
    "members",
    metadata,
    Column("workspace", String(32), primary_key=True),
    Column("principal", String(128), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("role", String(16), nullable=False),
    Column("added_ms", BigInteger, nullable=False),
    Index("ix_members_principal", "principal"),
)
