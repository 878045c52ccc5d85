"""`shipyard predict`: score a CSV or Parquet file with a registered model (batch scoring)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from shipyard.cli import _output


def predict(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A CSV, TSV or Parquet file to score.")],
    model: Annotated[
        str,
        typer.Option("--model", metavar="REF", help="NAME@N or NAME@ALIAS, e.g. credit@champion."),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", metavar="PATH", help="Where to write: .parquet, .csv or .tsv."),
    ],
    keep: Annotated[
        list[str] | None,
        typer.Option(
            "--keep",
            metavar="COLS",
            help="Copy columns through, e.g. --keep branch,region (the data set's id column "
            "is kept anyway).",
        ),
    ] = None,
    strict_ranges: Annotated[
        bool,
        typer.Option(
            "--strict-ranges",
            help="Refuse the file at the first value outside the training data (a number "
            "beyond its range, an unknown category) instead of scoring and counting it.",
        ),
    ] = False,
    chunk_rows: Annotated[
        int, typer.Option("--chunk-rows", min=1, help="Rows scored at a time (bounds memory).")
    ] = 50_000,
    json: _output.JsonFlag = False,
) -> None:
    """Score every row of FILE with a model; write the id, --keep columns and predictions."""
    from shipyard.serve.batch import score_file  # Arrow and the model libraries: only here

    with _output.workspace(ctx) as ws, _output.progress(disable=json) as bar:
        task = bar.add_task(f"scoring {file.name} with {model}", total=None)

        def on_chunk(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        result = score_file(
            ws,
            file,
            model,
            out,
            chunk_rows=chunk_rows,
            progress=on_chunk,
            keep=[c.strip() for k in keep or [] for c in k.split(",") if c.strip()],
            strict_ranges=strict_ranges,
        )
    if json:
        _output.print_json(result)
        return
    rate = result.rows / result.seconds if result.seconds else 0.0
    console = _output.console()
    console.print(
        Text.assemble(
            ("✓ ", "green"),
            f"scored {result.rows:,} rows with ",
            (result.model_ref, "bold"),
            f" in {result.seconds:.1f} s ({rate:,.0f} rows/s) → {result.out}",
        )
    )
    if result.kept:
        console.print(f"  columns kept: {', '.join(result.kept)}", markup=False)
    if result.out_of_range:
        counts = ", ".join(f"{name} {n:,}" for name, n in result.out_of_range.items())
        console.print(
            Text.assemble(("! ", "yellow"), f"outside the training data, scored anyway: {counts}")
        )
        console.print("  (values beyond its range, or unknown categories; --strict-ranges refuses)")
