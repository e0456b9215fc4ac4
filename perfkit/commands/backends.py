"""``perfkit backends``: every registered backend and variant, with availability and reason."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from .. import registry
from ..report.escape import rich_text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backends", help="list backends and their variants, with availability",
                       description="List every backend registered under the perfkit.backends entry-point "
                                   "group, each variant with whether it can run here and why not.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    table = Table(title="perfkit backends")
    table.add_column("variant (as --backend takes it)", no_wrap=True)  # whole, never cut: it is what users type
    table.add_column("available")
    table.add_column("reason", overflow="fold")
    for entry in registry.entries():
        if entry.cls is None:
            table.add_row(rich_text(entry.name), "[red]no[/red]", rich_text(entry.reason))
            continue
        for info in registry.describe_variants(entry.name):
            opts = ",".join(f"{k}={v}" for k, v in info.options.items())
            spec = f"{entry.name}:{opts}" if opts else entry.name
            avail = "[green]yes[/green]" if info.available else "[red]no[/red]"
            table.add_row(rich_text(spec), avail, rich_text(info.reason))
    console = Console()
    if not console.is_terminal:  # a pipe or a file: no terminal width to respect, so never fold a reason
        console = Console(width=max(console.width, 160))
    console.print(table)
    return 0
