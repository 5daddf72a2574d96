"""JSON output: one object per finding, values redacted unless ``reveal``."""

from __future__ import annotations

import json

from vaultside.scan.base import Finding


def finding_json(f: Finding, *, reveal: bool = False) -> dict[str, object]:
    """One finding as a JSON-ready dict."""
    loc = f.location
    out: dict[str, object] = {
        "rule_id": f.rule_id,
        "description": f.description,
        "severity": f.severity.name.lower(),
        "category": f.category,
        "fingerprint": f.fingerprint,
        "location": {
            "kind": loc.kind,
            "target": loc.target,
            "path": loc.path,
            "nested": list(loc.nested),
            "line": loc.line,
            "layer": loc.layer,
            "created_by": loc.created_by,
            "status": loc.status,
        },
    }
    if f.secret is not None:
        out["redacted"] = f.secret.redacted()
        out["length"] = len(f.secret)
        if reveal:
            out["value"] = f.secret.reveal()
    if f.known is not None:
        out["known"] = {
            "path": f.known.path,
            "field": f.known.field,
            "version": f.known.version,
            "status": f.known.status,
            "encoding": f.known.encoding,
        }
    if f.practice is not None:
        out["practice"] = f.practice
        out["advice"] = f.advice
    return out


class JsonReporter:
    """``{"findings": [...]}``."""

    def render(self, findings: list[Finding], *, reveal: bool = False) -> str:
        """Findings as a JSON document."""
        doc = {"findings": [finding_json(f, reveal=reveal) for f in findings]}
        return json.dumps(doc, indent=2)
