"""SARIF 2.1.0 output (validated against the OASIS schema in tests)."""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version

from vaultside.scan.base import Finding, Severity

_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
_SCORE = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}


def _uri(f: Finding) -> str:
    loc = f.location
    path = "!/".join((loc.path, *loc.nested))
    return f"{loc.target.lstrip('/')}/{path}" if loc.kind != "path" else path


class SarifReporter:
    """One run, one rule per rule id seen, one result per finding; values always redacted."""

    def render(self, findings: list[Finding], *, reveal: bool = False) -> str:
        """A SARIF log as JSON text (``reveal`` is ignored: SARIF files get uploaded)."""
        try:
            ver = version("vaultside")
        except PackageNotFoundError:
            ver = "0"
        rules: dict[str, dict[str, object]] = {}
        results: list[dict[str, object]] = []
        for f in findings:
            if f.rule_id not in rules:
                rules[f.rule_id] = {
                    "id": f.rule_id,
                    "name": f.rule_id.replace("-", " ").title().replace(" ", ""),
                    "shortDescription": {"text": f.description},
                    "defaultConfiguration": {"level": _LEVEL[f.severity]},
                    "properties": {"security-severity": _SCORE[f.severity], "tags": ["security"]},
                }
            text = f.description
            if f.secret is not None:
                # SECURITY: SARIF is uploaded to third parties; never reveal the value.
                text += f" ({f.secret.redacted()})"
            if f.known is not None:
                text += f"; managed secret {f.known.path}#{f.known.field} v{f.known.version}"
                text += f" ({f.known.status})"
            if f.location.created_by:
                text += f"; layer created by: {f.location.created_by[:200]}"
            if f.location.status:
                text += f"; {f.location.status} in a later layer"
            if f.advice:
                text += f"; {f.practice}: {f.advice}"
            phys: dict[str, object] = {"artifactLocation": {"uri": _uri(f)}}
            if f.location.line:
                phys["region"] = {"startLine": f.location.line}
            result: dict[str, object] = {
                "ruleId": f.rule_id,
                "level": _LEVEL[f.severity],
                "message": {"text": text},
                "locations": [{"physicalLocation": phys}],
                "partialFingerprints": {"vaultside/v1": f.fingerprint},
            }
            if f.location.layer:
                result["properties"] = {"layer": f.location.layer}
            results.append(result)
        doc = {
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [
                {
                    "tool": {
                        "driver": {
                            "name": "vaultside",
                            "version": ver,
                            "rules": list(rules.values()),
                        }
                    },
                    "results": results,
                }
            ],
        }
        return json.dumps(doc, indent=2)
