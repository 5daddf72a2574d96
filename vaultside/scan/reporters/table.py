"""A terminal table: severity, rule, where, and a redacted value (prefix, length, fingerprint)."""

from __future__ import annotations

import io
import sys

from rich import box
from rich.console import Console
from rich.table import Table

from vaultside.scan.base import Finding, Severity

_STYLE = {
    Severity.CRITICAL: "bold red",
    Severity.HIGH: "red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}


def where(f: Finding) -> str:
    """Location plus layer attribution, for humans."""
    loc = f.location
    text = loc.display()
    if loc.layer:
        text += f"\nlayer {loc.layer[:19]}"
    if loc.created_by:
        cb = loc.created_by if len(loc.created_by) <= 80 else loc.created_by[:77] + "..."
        text += f"\nby {cb}"
    if loc.status:
        text += f"\n({loc.status} in a later layer)"
    return text


class TableReporter:
    """Findings as a rich table (plain text when not a terminal)."""

    def __init__(self, width: int = 160) -> None:
        self.width = width

    def render(self, findings: list[Finding], *, reveal: bool = False) -> str:
        """The table, or a one-line all-clear."""
        if not findings:
            return "no findings\n"
        # A terminal gets ruled boxes; a pipe or file plain columns with a blank line between
        # findings (docs/cli.md: no box drawing outside a terminal).
        plain = not sys.stdout.isatty()
        table = Table(show_lines=not plain, box=None if plain else box.HEAVY_HEAD, leading=plain)
        for col in ("severity", "rule", "location", "value / practice"):
            table.add_column(col, overflow="fold")
        for f in findings:
            if f.secret is not None:
                value = f.secret.reveal() if reveal else f.secret.redacted()
                if f.known is not None:
                    value += (
                        f"\nmanaged: {f.known.path}#{f.known.field} v{f.known.version}"
                        f" ({f.known.status}, {f.known.encoding})"
                    )
            else:
                value = f"{f.practice}: {f.advice}"
            table.add_row(
                f"[{_STYLE[f.severity]}]{f.severity.name.lower()}[/]",
                f"{f.rule_id}\n{f.description}",
                where(f),
                value,
            )
        buf = io.StringIO()
        Console(file=buf, width=self.width, force_terminal=False, no_color=True).print(table)
        return buf.getvalue() + f"{len(findings)} finding(s)\n"
