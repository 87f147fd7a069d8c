"""The ``mlplatform`` command."""

import typer

app = typer.Typer(help="mlplatform: the ML lifecycle as one Dagster lineage graph.", no_args_is_help=True)
