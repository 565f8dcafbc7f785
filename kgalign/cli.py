"""Command-line interface: a thin Typer layer over the library.

Data goes to stdout; logs and progress go to stderr. Heavy modules (torch,
torch_geometric, sentence_transformers) are imported inside the commands that
need them so that ``kgalign --help`` stays instant.

Exit codes: 0 success, 1 internal error, 2 bad input, 3 missing resource,
130 interrupted.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from kgalign.errors import KgalignError

app = typer.Typer(
    name="kgalign",
    help=(
        "Multi-modal entity alignment between two knowledge graphs.\n\n"
        "Pipeline: ingest -> features -> train -> evaluate -> align -> export.\n\n"
        "Example:\n\n"
        "  kgalign ingest --kg1 a.ttl --kg2 b.ttl --links links.tsv -o ds\n\n"
        "  kgalign features ds && kgalign train ds --model noco -o run\n\n"
        "  kgalign evaluate run && kgalign export run --format ttl > links.ttl"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

log = logging.getLogger("kgalign")

# Offline by default: a hub look-up without network hangs for ~46 s otherwise.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def setup_logging(quiet: bool, verbose: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s" if not verbose else "%(asctime)s %(name)s %(levelname)s: %(message)s"))
    root = logging.getLogger("kgalign")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def show_progress(quiet: bool) -> bool:
    """Progress bars only when stderr is a terminal and not quiet."""
    return (not quiet) and sys.stderr.isatty()


def run_guarded(fn, *args, **kwargs):
    """Call library code; turn kgalign errors into one message and an exit code."""
    try:
        return fn(*args, **kwargs)
    except KgalignError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code)
    except FileExistsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130)


def emit_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


QuietOpt = typer.Option(False, "-q", "--quiet", help="Only warnings and errors on stderr.")
VerboseOpt = typer.Option(False, "-v", "--verbose", help="Debug logging on stderr.")
JsonOpt = typer.Option(False, "--json", help="Machine-readable JSON on stdout.")


def _print_version(value: bool) -> None:
    if value:
        from kgalign import __version__

        typer.echo(__version__)
        raise typer.Exit(0)


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True, callback=_print_version),
):
    """Multi-modal entity alignment between two knowledge graphs."""


# ---------------------------------------------------------------- ingest / info
# (owned by kgalign.data)


# ---------------------------------------------------------------- features
# (owned by kgalign.features)


# ---------------------------------------------------------------- train
# (owned by kgalign.training)


# ---------------------------------------------------------------- evaluate
# (owned by kgalign.evaluation)


# ---------------------------------------------------------------- align / export
# (owned by kgalign.export)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
