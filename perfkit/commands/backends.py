"""``perfkit backends``: every registered backend and variant, with availability and reason."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from .. import registry


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backends", help="list backends and their variants, with availability",
                       description="List every backend registered under the perfkit.backends entry-point "
                                   "group, each variant with whether it can run here and why not.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    table = Table(title="perfkit backends")
    for col in ("backend", "variant", "available", "reason"):
        table.add_column(col)
    for entry in registry.entries():
        if entry.cls is None:
            table.add_row(entry.name, "-", "[red]no[/red]", entry.reason)
            continue
        for info in registry.describe_variants(entry.name):
            opts = ",".join(f"{k}={v}" for k, v in info.options.items()) or "-"
            avail = "[green]yes[/green]" if info.available else "[red]no[/red]"
            table.add_row(entry.name, opts, avail, info.reason)
    Console().print(table)
    return 0
