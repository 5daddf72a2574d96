"""SARIF 2.1.0 output, ready for GitHub code scanning.

Checked in tests against the OASIS schema and with the SARIF multitool's GitHub rules
(``validate --rule-kind "Sarif;Gh"``): every rule has ``fullDescription`` and ``help``, the
driver has ``informationUri``, every artifact URI is a percent-encoded relative reference
resolved against a ``uriBaseId`` per scanned target (``IMAGE1`` = ``myapp:1.0``; a tag's
colon never reaches a URI, so ``myapp:1.0/app/.env`` cannot parse as scheme ``myapp:``).
Directory scans use ``%SRCROOT%`` (GitHub's checkout root convention).

# SECURITY: SARIF files are uploaded to third parties; values are always redacted.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

from vaultside.scan.base import Finding, Severity

INFORMATION_URI = "https://github.com/vaultside/vaultside"
_HELP_URI = INFORMATION_URI + "/blob/main/docs/scanning.md"
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
_SECRET_HELP = (
    "Treat the credential as leaked: revoke or rotate it where it was issued. Then rebuild "
    "the image without it: a file deleted in a later layer is still in the earlier layer, "
    "and ENV, LABEL and build arguments stay in the image config and history. Pass "
    "credentials at run time instead (build secrets, a secrets volume such as vaultside's "
    "plugin). A value that is not a credential can be accepted with --allowlist or --baseline."
)
_KNOWN_HELP = (
    "A secret managed by vaultside was found in plain text. Rotate it (vaultside scan "
    "--rotate-leaked rotates current versions that have a rotation policy) and remove the "
    "copy from the image or container."
)


def _uri(f: Finding) -> str:
    """The percent-encoded path of a finding relative to its target (``!/`` into archives)."""
    path = "!/".join((f.location.path, *f.location.nested)).lstrip("/")
    return quote(path, safe="/!")


def _rule(f: Finding) -> dict[str, object]:
    if f.category == "posture":
        full = f"{f.description} ({f.practice})" if f.practice else f.description
        help_text = f.advice or f.description
    else:
        full = (
            f"{f.description}: a credential of this type in plain text in an image layer, "
            "image config (Env, Labels, history), container settings or a file."
        )
        help_text = _KNOWN_HELP if f.category == "known" else _SECRET_HELP
    return {
        "id": f.rule_id,
        "name": f.rule_id.replace("-", " ").title().replace(" ", ""),
        "shortDescription": {"text": f.description},
        "fullDescription": {"text": full},
        "help": {"text": help_text, "markdown": f"**{f.description}**\n\n{help_text}"},
        "helpUri": _HELP_URI,
        "defaultConfiguration": {"level": _LEVEL[f.severity]},
        "properties": {
            "security-severity": _SCORE[f.severity],
            "tags": ["security", f.category],
        },
    }


def _message(f: Finding) -> str:
    text = f.description
    if f.secret is not None:
        text += f" ({f.secret.redacted()})"
    if f.known is not None:
        text += f"; managed secret {f.known.path}#{f.known.field} v{f.known.version}"
        text += f" ({f.known.status})"
    if f.location.kind != "path":
        text += f" in {f.location.target}"
    if f.location.created_by:
        text += f"; layer created by: {f.location.created_by[:200]}"
    if f.location.status:
        text += f"; {f.location.status} in a later layer"
    if f.advice:
        text += f"; {f.practice}: {f.advice}"
    return text


class _BaseIds:
    """One ``uriBaseId`` per scanned target, described for humans."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str], str] = {}
        self.original: dict[str, dict[str, object]] = {}

    def of(self, kind: str, target: str) -> str:
        key = (kind, target)
        if key not in self.ids:
            if kind == "path":
                first = "%SRCROOT%" not in self.original
                base = "%SRCROOT%" if first else f"SRCROOT{len(self.ids) + 1}"
                root = Path(target).resolve()
                uri = (root if root.is_dir() else root.parent).as_uri() + "/"
                self.original[base] = {"uri": uri, "description": {"text": f"directory {target}"}}
            else:
                base = f"{kind.upper()}{len(self.ids) + 1}"
                self.original[base] = {"description": {"text": f"{kind} {target}"}}
            self.ids[key] = base
        return self.ids[key]


class SarifReporter:
    """One run, one rule per rule id seen, one result per finding; values always redacted."""

    def render(self, findings: list[Finding], *, reveal: bool = False) -> str:
        """A SARIF log as JSON text (``reveal`` is ignored: SARIF files get uploaded)."""
        from importlib.metadata import PackageNotFoundError, version  # ~10 ms: only here

        try:
            ver = version("vaultside")
        except PackageNotFoundError:
            ver = "0"
        rules: dict[str, dict[str, object]] = {}
        index: dict[str, int] = {}
        bases = _BaseIds()
        results: list[dict[str, object]] = []
        for f in findings:
            if f.rule_id not in rules:
                index[f.rule_id] = len(rules)
                rules[f.rule_id] = _rule(f)
            loc = f.location
            artifact = {"uri": _uri(f), "uriBaseId": bases.of(loc.kind, loc.target)}
            # GitHub wants a region on every location: no line (posture, archive members) -> 1
            phys = {"artifactLocation": artifact, "region": {"startLine": loc.line or 1}}
            result: dict[str, object] = {
                "ruleId": f.rule_id,
                "ruleIndex": index[f.rule_id],
                "level": _LEVEL[f.severity],
                "message": {"text": _message(f)},
                "locations": [{"physicalLocation": phys}],
                "partialFingerprints": {"vaultside/v1": f.fingerprint},
            }
            props: dict[str, object] = {"target": loc.target}
            if loc.layer:
                props["layer"] = loc.layer
            result["properties"] = props
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
                            "semanticVersion": ver,
                            "informationUri": INFORMATION_URI,
                            "rules": list(rules.values()),
                        }
                    },
                    "originalUriBaseIds": bases.original,
                    "results": results,
                }
            ],
        }
        return json.dumps(doc, indent=2)
