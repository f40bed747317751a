"""One reading of model and dataset references: a table of what each text names."""

from __future__ import annotations

import pytest

from plinth.core.errors import InvalidInput
from plinth.core.refs import MAX_VERSION, DatasetRef, ModelRef, check_ref_name


@pytest.mark.parametrize(
    ("text", "name", "version", "alias", "printed"),
    [
        ("churn", "churn", None, None, "churn"),
        ("churn/3", "churn", 3, None, "churn/3"),
        ("churn/007", "churn", 7, None, "churn/7"),
        (f"churn/{MAX_VERSION}", "churn", MAX_VERSION, None, f"churn/{MAX_VERSION}"),
        ("churn@champion", "churn", None, "champion", "churn@champion"),
        ("churn@latest", "churn", None, None, "churn"),
        ("org/churn", "org/churn", None, None, "org/churn"),
        ("org/churn/3", "org/churn", 3, None, "org/churn/3"),
        ("org/churn@champion", "org/churn", None, "champion", "org/churn@champion"),
        ("org/3/churn", "org/3/churn", None, None, "org/3/churn"),
        ("org/v3", "org/v3", None, None, "org/v3"),
        ("3", "3", None, None, "3"),
        ("models:/churn/3", "churn", 3, None, "churn/3"),
        ("models:/org/churn/3", "org/churn", 3, None, "org/churn/3"),
        ("models:/churn@champion", "churn", None, "champion", "churn@champion"),
        ("models:/org/churn/latest", "org/churn", None, None, "org/churn"),
        ("models:/churn", "churn", None, None, "churn"),
    ],
)
def test_model_references(text: str, name: str, version: int | None, alias: str | None, printed: str) -> None:
    ref = ModelRef.parse(text)
    assert (ref.name, ref.version, ref.alias) == (name, version, alias)
    assert str(ref) == printed
    assert ModelRef.parse(str(ref)) == ref


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must be NAME"),
        ("   ", "must be NAME"),
        ("/3", "no name"),
        ("@champion", "no name"),
        ("churn/", "ends with '/'"),
        ("churn/0", "positive whole number"),
        ("churn/-1", "positive whole number"),
        ("churn/ 3", "positive whole number"),
        ("churn/1_000", "positive whole number"),
        ("churn/²", "positive whole number"),
        ("churn/\uff13", "positive whole number"),
        (f"churn/{MAX_VERSION + 1}", "larger than any version"),
        ("churn/" + "9" * 5000, "larger than any version"),
        ("churn@", "Alias ''"),
        ("churn@1st", "Alias '1st'"),
        ("churn/3@champion", "both a version and an alias"),
        ("org//churn", "empty, '.' or '..' part"),
        ("/org/churn", "empty, '.' or '..' part"),
        ("org/../churn", "empty, '.' or '..' part"),
        ("a@b@champion", "may not contain '@'"),
        ("churn\ud800", "lone surrogate"),
        ("models:/churn/Production", "MLflow stage"),
        ("models:/org/churn/staging", "MLflow stage"),
        ("models:/", "no name"),
    ],
)
def test_bad_model_references(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        ModelRef.parse(text)


@pytest.mark.parametrize(
    ("text", "name", "version", "printed"),
    [
        ("ds", "ds", None, "ds"),
        ("ds/1", "ds", 1, "ds/1"),
        ("ds@latest", "ds", None, "ds"),
        ("org/churn", "org/churn", None, "org/churn"),
        ("org/churn/3", "org/churn", 3, "org/churn/3"),
        ("digits/train", "digits/train", None, "digits/train"),
    ],
)
def test_dataset_references(text: str, name: str, version: int | None, printed: str) -> None:
    ref = DatasetRef.parse(text)
    assert (ref.name, ref.version) == (name, version)
    assert str(ref) == printed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ds@v1", "Datasets have no aliases"),
        ("ds/", "ends with '/'"),
        ("/1", "no name"),
        ("ds/0", "positive whole number"),
        (" ", "NAME or NAME/VERSION"),
        ("a//b", "empty, '.' or '..' part"),
    ],
)
def test_bad_dataset_references(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        DatasetRef.parse(text)


@pytest.mark.parametrize(
    "name", ["ds/1", "org/churn/3", "ds/007", "ds/²", "a@b", "a//b", "/a", "a/", "a/./b"]
)
def test_names_no_reference_could_name_are_refused(name: str) -> None:
    """`ds/1` always reads as version 1 of `ds`: no dataset or model can be named `ds/1`."""
    for what in ("model", "dataset"):
        with pytest.raises(InvalidInput, match=f"{what.capitalize()} name"):
            check_ref_name(name, what)


def test_references_are_values() -> None:
    assert ModelRef("org/churn", version=3) == ModelRef.parse("org/churn/3")
    assert ModelRef.parse(ModelRef("churn")) == ModelRef("churn")
    assert ModelRef("churn", alias="latest") == ModelRef("churn")
    assert ModelRef("churn", alias="champion").moves
    assert not ModelRef("churn", version=1).moves
    assert {DatasetRef("ds", 1), DatasetRef.parse("ds/1")} == {DatasetRef("ds", 1)}
    with pytest.raises(InvalidInput, match="not both"):
        ModelRef("churn", version=1, alias="champion")
    with pytest.raises(InvalidInput, match="from 1 to"):
        DatasetRef("ds", 0)
