"""Custom rules files (``--rules``): vaultside's ``[[rule]]`` tables or gitleaks' ``[[rules]]``.

A rules file must never silently match nothing: every key is checked (an unknown or
unsupported key is an ``InvalidRequestError`` naming it), and a file that defines no rule,
disables none and allows nothing is an error too.

gitleaks (v8) keys understood: ``title``; ``[extend]`` ``useDefault`` (vaultside's built-in
rules always run) and ``disabledRules``; per rule ``id``, ``description``, ``regex``,
``secretGroup``, ``entropy``, ``keywords``, ``path`` (with a regex: only files whose path
matches), ``tags``, and allowlists (``[[rules.allowlists]]`` or ``[rules.allowlist]``:
``description``, ``condition`` OR/AND, ``regexTarget`` secret/match/line, ``regexes``,
``paths``, ``stopwords``); global ``[allowlist]`` / ``[[allowlists]]`` (with ``targetRules``).
Go RE2 syntax is compiled as Python ``re``; ``\\z`` becomes ``\\Z``. ``regexTarget = "match"``
is checked against the whole line (a superset of the match). Not supported (clear errors):
path-only rules, ``commits`` allowlists, ``[extend] path``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaultside.errors import InvalidRequestError
from vaultside.scan.base import Candidate, Location, Severity
from vaultside.scan.detectors.rules import Rule, default_rules, load_rules

_OURS = {"id", "description", "severity", "regex", "keywords", "entropy", "generic"}
_OURS |= {"validator", "multiline", "back"}
_GL_TOP = {"title", "extend", "rules", "allowlist", "allowlists", "description"}
_GL_RULE = {"id", "description", "regex", "secretGroup", "entropy", "keywords", "path", "tags"}
_GL_RULE |= {"allowlist", "allowlists", "severity"}
_GL_ALLOW = {"description", "condition", "regexTarget", "regexes", "paths", "stopwords"}
_GL_ALLOW |= {"targetRules"}
_UNSUPPORTED = {
    "commits": "commit allowlists do not apply to images and files",
    "report": "report-only rules are not supported",
    "skipReport": "report-only rules are not supported",
}


def _check_keys(obj: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in obj:
        if key in _UNSUPPORTED:
            raise InvalidRequestError(f"{where}: {key!r} is not supported ({_UNSUPPORTED[key]})")
        if key not in allowed:
            raise InvalidRequestError(
                f"{where}: unknown key {key!r} (known: {', '.join(sorted(allowed))})"
            )


def _compile(pattern: object, where: str) -> re.Pattern[bytes]:
    if not isinstance(pattern, str) or not pattern:
        raise InvalidRequestError(f"{where}: a regex must be a non-empty string")
    try:
        return re.compile(re.sub(r"(?<!\\)\\z", r"\\Z", pattern).encode())
    except re.error as exc:
        raise InvalidRequestError(f"{where}: invalid regex ({exc})") from None


def _strings(obj: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = obj.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequestError(f"{where}: {key} must be a list of strings")
    return list(value)


@dataclass(frozen=True)
class _Allow:
    """One allowlist: any (OR) or all (AND) of its given criteria must hold."""

    regexes: tuple[re.Pattern[bytes], ...] = ()
    paths: tuple[re.Pattern[bytes], ...] = ()
    stopwords: tuple[str, ...] = ()
    target: str = "secret"
    all_of: bool = False
    rules: frozenset[str] = frozenset()  # global allowlists: only these rules (empty: all)

    def allows(self, cand: Candidate, data: bytes, location: Location) -> bool:
        if self.rules and cand.rule_id not in self.rules:
            return False
        secret = cand.secret.reveal()
        if self.target == "secret":
            subject = secret.encode()
        else:
            lo = data.rfind(b"\n", 0, cand.start) + 1
            hi = data.find(b"\n", cand.end)
            subject = data[lo : hi if hi >= 0 else len(data)]
        path = "/".join((location.path, *location.nested)).encode()
        checks: list[bool] = []
        if self.regexes:
            checks.append(any(r.search(subject) for r in self.regexes))
        if self.paths:
            checks.append(any(p.search(path) for p in self.paths))
        if self.stopwords:
            low = secret.lower()
            checks.append(any(w.lower() in low for w in self.stopwords))
        return bool(checks) and (all(checks) if self.all_of else any(checks))


def _allow(obj: object, where: str, *, global_: bool = False) -> _Allow:
    if not isinstance(obj, dict):
        raise InvalidRequestError(f"{where}: an allowlist must be a table")
    _check_keys(obj, _GL_ALLOW if global_ else _GL_ALLOW - {"targetRules"}, where)
    condition = str(obj.get("condition", "OR")).upper()
    target = str(obj.get("regexTarget", "secret"))
    if condition not in ("OR", "AND"):
        raise InvalidRequestError(f"{where}: condition must be OR or AND")
    if target not in ("secret", "match", "line"):
        raise InvalidRequestError(f"{where}: regexTarget must be secret, match or line")
    allow = _Allow(
        regexes=tuple(_compile(r, where) for r in _strings(obj, "regexes", where)),
        paths=tuple(_compile(p, where) for p in _strings(obj, "paths", where)),
        stopwords=tuple(_strings(obj, "stopwords", where)),
        target=target,
        all_of=condition == "AND",
        rules=frozenset(_strings(obj, "targetRules", where)),
    )
    if not (allow.regexes or allow.paths or allow.stopwords):
        raise InvalidRequestError(f"{where}: an allowlist needs regexes, paths or stopwords")
    return allow


def _allow_list(value: object, where: str, *, global_: bool = False) -> list[_Allow]:
    items = value if isinstance(value, list) else [value]
    return [_allow(a, f"{where}[{i}]", global_=global_) for i, a in enumerate(items)]


@dataclass
class RuleFile:
    """What a rules file adds: rules, rule ids it disables, and allowlists (as a ``Filter``)."""

    rules: list[Rule] = field(default_factory=list)
    disabled: frozenset[str] = frozenset()
    allow_by_rule: dict[str, list[_Allow]] = field(default_factory=dict)
    allow_all: list[_Allow] = field(default_factory=list)
    path_only: dict[str, re.Pattern[bytes]] = field(default_factory=dict)

    def rejects(self, cand: Candidate, data: bytes, location: Location) -> bool:
        """True if an allowlist accepts ``cand`` or its rule does not apply to this path."""
        scope = self.path_only.get(cand.rule_id)
        path = "/".join((location.path, *location.nested)).encode()
        if scope is not None and not scope.search(path):
            return True
        allows = [*self.allow_by_rule.get(cand.rule_id, ()), *self.allow_all]
        return any(a.allows(cand, data, location) for a in allows)

    def merged(self, base: Sequence[Rule]) -> list[Rule]:
        """``base`` minus disabled ids and ids this file redefines, plus this file's rules."""
        ids = {r.id for r in self.rules} | self.disabled
        return [r for r in base if r.id not in ids] + self.rules


def _gitleaks_rule(obj: object, where: str, out: RuleFile) -> None:
    if not isinstance(obj, dict):
        raise InvalidRequestError(f"{where}: must be a table")
    rid = obj.get("id")
    if not isinstance(rid, str) or not rid:
        raise InvalidRequestError(f"{where}: a rule has no id")
    where = f"{where} ({rid})"
    _check_keys(obj, _GL_RULE, where)
    if "regex" not in obj:
        raise InvalidRequestError(f"{where}: path-only rules (no regex) are not supported")
    regex = _compile(obj["regex"], where)
    group = obj.get("secretGroup")
    if group is not None and (not isinstance(group, int) or not 0 <= group <= regex.groups):
        raise InvalidRequestError(f"{where}: secretGroup {group!r} is not a group of its regex")
    entropy = obj.get("entropy")
    if entropy is not None and not isinstance(entropy, int | float):
        raise InvalidRequestError(f"{where}: entropy must be a number")
    try:
        severity = Severity.parse(str(obj.get("severity", "high")))
    except ValueError as exc:
        raise InvalidRequestError(f"{where}: {exc}") from None
    out.rules.append(
        Rule(
            id=rid,
            description=str(obj.get("description", rid)),
            severity=severity,
            regex=regex,
            keywords=tuple(k.lower().encode() for k in _strings(obj, "keywords", where)),
            entropy=float(entropy) if entropy is not None else None,
            group=group,
        )
    )
    if "path" in obj:
        out.path_only[rid] = _compile(obj["path"], f"{where} path")
    for key in ("allowlist", "allowlists"):
        if key in obj:
            out.allow_by_rule.setdefault(rid, []).extend(_allow_list(obj[key], f"{where} {key}"))


def parse_rule_file(text: str, origin: str) -> RuleFile:
    """A ``RuleFile`` from TOML text; ``InvalidRequestError`` names the bad key or rule."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidRequestError(f"{origin}: not valid TOML: {exc}") from None
    out = RuleFile()
    if "rule" in doc:  # vaultside's own format
        _check_keys(doc, {"rule"}, origin)
        tables = doc["rule"]
        if not isinstance(tables, list):
            raise InvalidRequestError(f"{origin}: [[rule]] must be an array of tables")
        for i, t in enumerate(tables):
            if isinstance(t, dict):
                _check_keys(t, _OURS, f"{origin}: [[rule]] #{i + 1} ({t.get('id', '?')})")
        out.rules = load_rules(text, origin)
    else:  # gitleaks
        _check_keys(doc, _GL_TOP, origin)
        extend = doc.get("extend", {})
        if not isinstance(extend, dict):
            raise InvalidRequestError(f"{origin}: [extend] must be a table")
        if "path" in extend:
            raise InvalidRequestError(f"{origin}: [extend] path is not supported")
        _check_keys(extend, {"useDefault", "disabledRules"}, f"{origin}: [extend]")
        out.disabled = frozenset(_strings(extend, "disabledRules", f"{origin}: [extend]"))
        rules = doc.get("rules", [])
        if not isinstance(rules, list):
            raise InvalidRequestError(f"{origin}: [[rules]] must be an array of tables")
        for i, r in enumerate(rules):
            _gitleaks_rule(r, f"{origin}: [[rules]] #{i + 1}", out)
        for key in ("allowlist", "allowlists"):
            if key in doc:
                out.allow_all.extend(_allow_list(doc[key], f"{origin}: {key}", global_=True))
    if not (out.rules or out.disabled or out.allow_all):
        raise InvalidRequestError(
            f"{origin}: defines no rules ([[rule]] for vaultside's format, [[rules]] for"
            " gitleaks'), disables none and allows nothing"
        )
    return out


def load_rule_file(path: Path | None) -> tuple[list[Rule], RuleFile | None]:
    """The rules to scan with (built-ins merged with ``path``'s) and its filter, if any."""
    base = default_rules()
    if path is None:
        return base, None
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(f"cannot read rules file {path}: {exc}") from None
    rf = parse_rule_file(text, str(path))
    return rf.merged(base), rf
