"""`plinth predict`: batch inference over a large Parquet/CSV file or folder, resumable and tracked."""

from __future__ import annotations

import click

from plinth.cli.options import executor_option, proba_option, ray_address_option
from plinth.cli.render import duration, say
from plinth.serving.batch import DEFAULT_BATCH_SIZE


@click.command("predict", short_help="Score a large Parquet/CSV file or folder in chunks (resumable).")
@click.argument("ref")
@click.option(
    "--input",
    "-i",
    "input_path",
    required=True,
    metavar="PATH",
    help="A .parquet, .pq or .csv file, or a folder of them (read in path order).",
)
@click.option(
    "--output", "-o", "output_path", required=True, metavar="FILE", help="The .parquet file to write."
)
@click.option(
    "--batch-size",
    "-b",
    default=DEFAULT_BATCH_SIZE,
    show_default=True,
    type=click.IntRange(min=1),
    metavar="N",
    help="Rows per chunk; each chunk is validated, scored and written on its own.",
)
@click.option(
    "--workers",
    "-w",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    metavar="N",
    help="Processes scoring chunks in parallel (with --executor local).",
)
@executor_option(default="local")
@ray_address_option
@click.option(
    "--id-column",
    "id_columns",
    multiple=True,
    metavar="NAME",
    help="Copy this input column into the output, not into the model (repeatable).",
)
@proba_option
@click.option(
    "--store-output/--no-store-output",
    default=True,
    show_default=True,
    help="Also store the output as the run's artifact predictions.parquet.",
)
def predict(
    ref: str,
    input_path: str,
    output_path: str,
    batch_size: int,
    workers: int,
    executor: str,
    ray_address: str | None,
    id_columns: tuple[str, ...],
    proba: bool,
    store_output: bool,
) -> None:
    """Predict with REF (NAME, NAME/VERSION or NAME@ALIAS) over a large input, in chunks.

    Writes a Parquet file with the --id-column values, the predictions (`prediction`, or
    `prediction_0..k`) and `model_version`. Every chunk is checked against the model's
    signature. After a crash, run the same command again: chunks already written are
    skipped. The call is recorded as a run of experiment batch-predict, with lineage from
    the input's sha256 through the model version to the output.
    """
    from plinth.serving.batch import batch_predict

    result = batch_predict(
        ref,
        input_path,
        output_path,
        batch_size=batch_size,
        workers=workers,
        executor=executor,
        ray_address=ray_address,
        id_columns=id_columns,
        proba=proba,
        store_output=store_output,
    )
    if result.chunks_skipped:
        say(f"Resumed: {result.chunks_skipped} of {result.chunks} chunks were already written.")
    say(
        f"Wrote {result.rows:,} predictions of {result.model_version} to {output_path} in "
        f"{duration(result.seconds)} ({result.rows_per_s:,.0f} rows/s); run {result.run_id}"
    )
