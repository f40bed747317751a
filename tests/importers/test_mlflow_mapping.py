"""How the importer maps MLflow's records to plinth's, without a store: points, ids, datasets, paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from plinth.core.errors import SchemaError
from plinth.importers.mlflow.artifacts import Locator, local_path, proxied_path
from plinth.importers.mlflow.context import imported_id
from plinth.importers.mlflow.datasets import new_dataset
from plinth.importers.mlflow.points import SEQ_PER_MS, columns, missing
from plinth.importers.mlflow.records import MlDataset, RunPoints, restore_infinities
from plinth.importers.mlflow.revisions import KNOWN_REVISIONS, check_revision


def run_points(run_id: str, rows: list[tuple[str, int, int, float]]) -> RunPoints:
    keys, steps, stamps, values = zip(*rows, strict=True)
    return RunPoints(
        run_id,
        np.array(keys, dtype=object),
        np.array(steps, dtype=np.int64),
        np.array(stamps, dtype=np.int64),
        np.array(values, dtype=np.float64),
    )


def test_points_are_ordered_as_mlflow_orders_them_and_numbered_by_their_time() -> None:
    a = run_points(
        "a", [("loss", 1, 20, 2.0), ("loss", 1, 10, 9.0), ("acc", 0, 5, 0.5), ("loss", 1, 10, 1.0)]
    )
    b = run_points("b", [("loss", 0, 7, 3.0)])

    cols = columns([("A", a, None), ("B", b, None)])

    assert cols is not None
    assert [row[:2] for row in cols] == [
        ("A", "acc"),
        ("A", "loss"),
        ("A", "loss"),
        ("A", "loss"),
        ("B", "loss"),
    ]
    assert [(r[2], r[4], r[5]) for r in cols][1:4] == [(1, 10, 1.0), (1, 10, 9.0), (1, 20, 2.0)]
    seqs = [r[3] for r in cols]
    assert seqs[1:4] == [10 * SEQ_PER_MS, 10 * SEQ_PER_MS + 1, 20 * SEQ_PER_MS]  # ties at one time: by value


def test_a_mask_keeps_the_numbers_of_the_whole_run() -> None:
    points = run_points("a", [("m", 0, 10, 1.0), ("m", 0, 10, 2.0), ("m", 1, 11, 3.0)])
    stored = {"m": np.array([(0, 10, 1.0)], dtype=[("step", "i8"), ("timestamp_ms", "i8"), ("value", "f8")])}

    keep = missing(points, stored)
    cols = columns([("A", points, keep)])

    assert keep.tolist() == [False, True, True]
    assert cols is not None and [(r[2], r[3], r[5]) for r in cols] == [
        (0, 10 * SEQ_PER_MS + 1, 2.0),
        (1, 11 * SEQ_PER_MS, 3.0),
    ]
    assert columns([("A", points, np.zeros(3, dtype=bool))]) is None


def test_nan_points_match_nan_points_when_completing_a_run() -> None:
    points = run_points("a", [("m", 0, 1, float("nan")), ("m", 1, 2, 0.5)])
    stored = {
        "m": np.array([(0, 1, np.nan)], dtype=[("step", "i8"), ("timestamp_ms", "i8"), ("value", "f8")])
    }

    assert missing(points, stored).tolist() == [False, True]


def test_mlflows_stand_ins_for_infinities_become_infinities() -> None:
    biggest = np.finfo(np.float64).max
    values = restore_infinities(np.array([biggest, -biggest, 1.0, biggest / 2]))
    assert values.tolist() == [np.inf, -np.inf, 1.0, biggest / 2]


def test_an_imported_id_is_the_same_on_every_import_and_sorts_by_time() -> None:
    first = imported_id("run", "abc", 1_700_000_000_000)
    assert (
        first == imported_id("run", "abc", 1_700_000_000_000) != imported_id("run", "abd", 1_700_000_000_000)
    )
    assert len(first) == 26 and imported_id("run", "zzz", 1_600_000_000_000) < first
    assert imported_id("run", "abc", None).startswith("0000000000")


def test_a_dataset_mlflow_described_holds_no_bytes() -> None:
    dataset = MlDataset(
        id="d1",
        name="iris",
        digest="e04b265d",
        source_type="s3",
        source='{"uri": "s3://bucket/iris.csv"}',
        schema='{"mlflow_colspec": [{"type": "double", "name": "x", "required": true}]}',
        profile='{"num_rows": 4, "num_elements": 8}',
    )

    new = new_dataset(dataset)

    assert (new.name, new.digest, new.size, new.rows, new.source) == (
        "iris",
        "e04b265d",
        0,
        4,
        "s3://bucket/iris.csv",
    )
    assert new.schema == [{"name": "x", "type": "double"}]
    assert new.profile["bytes_held"] is False and new.profile["mlflow"]["profile"] == {
        "num_rows": 4,
        "num_elements": 8,
    }


def test_a_dataset_with_free_text_fields_still_maps() -> None:
    new = new_dataset(MlDataset("d", "n", "1", "code", "not json", None, "nor this"))
    assert (new.rows, new.schema, new.source) == (0, [], "not json")


def test_every_known_revision_reads_and_an_unknown_one_is_named() -> None:
    assert check_revision(KNOWN_REVISIONS[-1], "db") == KNOWN_REVISIONS[-1]
    assert len(set(KNOWN_REVISIONS)) == len(KNOWN_REVISIONS)
    with pytest.raises(SchemaError, match="'0123456789ab', which this plinth does not know"):
        check_revision("0123456789ab", "db")
    with pytest.raises(SchemaError, match="records no MLflow schema revision"):
        check_revision(None, "db")


def test_artifact_locations_are_found_locally_or_under_the_root(tmp_path: Path) -> None:
    run_folder = tmp_path / "1" / "r1" / "artifacts"
    run_folder.mkdir(parents=True)
    assert local_path("file:///a%20b/c") == "/a b/c" and local_path("/x/y") == "/x/y"
    assert (
        local_path("s3://bucket/x") is None
        and proxied_path("mlflow-artifacts:/1/r1/artifacts") == "1/r1/artifacts"
    )

    rooted = Locator(str(tmp_path))
    assert rooted.run_folder("1", "r1", "s3://elsewhere/1/r1/artifacts") == str(run_folder)
    assert rooted.folder("mlflow-artifacts:/1/r1/artifacts") == str(run_folder)
    assert Locator(None).run_folder("1", "r1", str(run_folder)) == str(run_folder)
    assert Locator(None).run_folder("1", "r1", "s3://elsewhere") is None
    assert "give --artifacts-root" in Locator(None).unreachable("s3://elsewhere")
