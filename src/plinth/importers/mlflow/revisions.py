"""The MLflow database schemas the importer reads: Alembic revisions from MLflow 1.x to 3.17.

MLflow upgrades its tables with Alembic and records the revision in `alembic_version`. The
importer reads the tables by name and reflects their columns, so it reads every revision below
(older ones lack some tables: no datasets before 2.4, no logged models before 3.0, which it
then finds nothing in). A revision not listed comes from an MLflow newer than this plinth
knows, whose tables may mean something else: it is refused rather than guessed at.
"""

from __future__ import annotations

from plinth.core.errors import SchemaError

KNOWN_REVISIONS: tuple[str, ...] = (
    "451aebb31d03",  # add metric step (the first revision)
    "90e64c465722",
    "181f10493468",
    "df50e92ffc5e",
    "7ac759974ad8",
    "89d4b8295536",
    "2b4d017a5e9b",  # model registry tables
    "cfd24bdc0731",
    "0a8213491aaa",
    "728d730b5ebd",
    "27a6a02d2cf1",
    "84291f40a231",
    "a8c4a736bde6",
    "39d1c3be5f05",
    "c48cb773bb87",
    "bd07f7e963c5",
    "0c779009ac13",
    "cc1f77228345",
    "97727af70f4d",
    "3500859a5d39",  # model aliases
    "7f2a7d5fae7d",  # datasets, inputs, input tags
    "2d6e25af4d3e",
    "acf3f17fdcc7",
    "867495a8f9d4",
    "5b0e9adcef9c",
    "4465047574b1",
    "f5a4f2784254",
    "0584bdc529eb",
    "400f98739977",  # logged models (MLflow 3)
    "6953534de441",
    "bda7b8c39065",
    "cbc13b556ace",
    "770bee3ae1dd",
    "a1b2c3d4e5f6",
    "de4033877273",
    "1a0cddfcaa16",
    "534353b11cbc",
    "71994744cf8e",
    "3da73c924c2f",
    "bf29a5ff90ea",
    "1bd49d398cd23",
    "b7c8d9e0f1a2",
    "5d2d30f0abce",
    "c9d4e5f6a7b8",
    "2c33131f4dae",
    "d3e4f5a6b7c8",
    "d0e1f2a3b4c5",
    "c8d9e0f1a2b3",
    "1b5f0d9ad7c1",  # workspace columns
    "e1f2a3b4c5d6",
    "76601a5f987d",
    "c3d6457b6d8a",
    "a5b4c3d2e1f0",
    "ae8bbe7743c9",
    "7d34483879f0",
    "da6fb0208061",
    "89d3d66ed43f",
    "b7e4c1a90f23",
    "a8b9c0d1e2f3",
    "c1d2e3f4a5b6",
    "c3d9e7f1a2b4",
    "6f8d9c3b2a1e",
    "1971f2d9a75b",
    "17e22815139b",
    "b7e2c1a4d9f3",
    "75868b020152",
    "dc11669786a5",  # MLflow 3.17
)
"""Every revision of MLflow's tracking schema up to MLflow 3.17, oldest first."""

NEWEST_KNOWN = "3.17"
"""The newest MLflow whose schema the list above reaches."""


def check_revision(revision: str | None, where: str) -> str:
    """Return `revision` when the importer knows it.

    Raises:
        SchemaError: no revision recorded (not an MLflow database, or one never upgraded), or
            one this plinth does not know (from an MLflow newer than 3.17).
    """
    if revision is None:
        raise SchemaError(
            f"{where} records no MLflow schema revision (its alembic_version table is empty or "
            "missing): it is not an MLflow tracking database, or one MLflow never finished "
            "creating. Point --from at the database `mlflow server --backend-store-uri` uses."
        )
    if revision not in KNOWN_REVISIONS:
        raise SchemaError(
            f"{where} has MLflow schema revision {revision!r}, which this plinth does not know "
            f"(it reads the revisions of MLflow up to {NEWEST_KNOWN}). It comes from a newer "
            "MLflow: upgrade plinth, or import through that MLflow's server "
            "(--from http://host:port), whose REST API does not change with its database."
        )
    return revision
