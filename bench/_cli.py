"""What every bench script's command line shares (a helper, not a bench script: ``make bench`` does not run it)."""

from __future__ import annotations

import argparse


def parser(doc: str | None) -> argparse.ArgumentParser:
    """The script's parser, its docstring as the help, with ``--smoke``: tiny sizes, one repeat, no timing targets
    (``make test`` runs every script so, to catch one a refactor broke)."""
    out = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    out.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, one repeat, no timing targets: checks the script still runs (make test)",
    )
    return out
