"""A terminal table: severity, rule, where, and a redacted value (prefix, length, fingerprint).

Every cell is a ``rich.text.Text``, never markup: paths, commands and values are shown
verbatim (a file named ``a[/]b`` or ``[bold]x`` is just a name). Severity is coloured only
when asked (a terminal); the width is the terminal's when ``width`` is None.
"""

from __future__ import annotations

import io
import sys

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

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
    """Findings as a rich table: coloured severities for a terminal, plain text otherwise."""

    def __init__(self, width: int | None = 160, *, color: bool = False) -> None:
        self.width = width
        self.color = color

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
                Text(f.severity.name.lower(), style=_STYLE[f.severity]),
                Text(f"{f.rule_id}\n{f.description}"),
                Text(where(f)),
                Text(value),
            )
        buf = io.StringIO()
        console = Console(
            file=buf,
            width=self.width,
            force_terminal=self.color,
            no_color=not self.color,
            color_system="standard" if self.color else None,
            highlight=False,
        )
        console.print(table)
        return buf.getvalue() + f"{len(findings)} finding(s)\n"
