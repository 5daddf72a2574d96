"""Admission policy: may this container receive secrets? Each rule is deny / warn / off."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

Action = Literal["deny", "warn", "off"]
RULES: tuple[str, ...] = (
    "privileged",
    "root_user",
    "docker_socket",
    "no_limits",
    "writable_rootfs",
    "image_not_allowed",
    "image_findings",
)
DEFAULT_ACTIONS: dict[str, Action] = {
    "privileged": "deny",
    "root_user": "warn",
    "docker_socket": "deny",
    "no_limits": "warn",
    "writable_rootfs": "warn",
    "image_not_allowed": "deny",
    "image_findings": "warn",
}


@dataclass(frozen=True, slots=True)
class ContainerFacts:
    """What admission needs to know about a container (from the engine, never from options)."""

    id: str
    name: str
    image: str
    image_id: str
    labels: Mapping[str, str] = field(default_factory=dict)
    repo_digests: tuple[str, ...] = ()
    privileged: bool = False
    user: str = ""
    docker_socket_mounted: bool = False
    memory_limit: int = 0
    pids_limit: int | None = None
    readonly_rootfs: bool = False

    @property
    def runs_as_root(self) -> bool:
        """True if the configured user is uid 0 (empty means the image default: root here)."""
        user = self.user.partition(":")[0].strip()
        return user in ("", "0", "root")

    @property
    def numeric_user(self) -> tuple[int | None, int | None]:
        """(uid, gid) if the container's ``User`` is numeric, else Nones."""
        uid_text, _, gid_text = self.user.partition(":")
        uid = int(uid_text) if uid_text.isdigit() else None
        gid = int(gid_text) if gid_text.isdigit() else None
        if uid == 0 and gid is None:
            gid = 0
        return uid, gid


class ImageFindingsCheck(Protocol):
    """Scanner hook: does this image have unresolved leak findings?"""

    async def unresolved_findings(self, image_ref: str) -> int:
        """How many unresolved findings the image (name or id) has; 0 when clean or unknown."""
        ...


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """One rule's verdict for one container."""

    rule: str
    action: Action
    triggered: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The admission result: allowed or not, and why."""

    allowed: bool
    outcomes: tuple[RuleOutcome, ...]

    @property
    def denials(self) -> list[str]:
        """Reasons of rules that denied."""
        return [o.reason for o in self.outcomes if o.triggered and o.action == "deny"]

    @property
    def warnings(self) -> list[str]:
        """Reasons of rules that only warned."""
        return [o.reason for o in self.outcomes if o.triggered and o.action == "warn"]


def image_matches(facts: ContainerFacts, allowed: tuple[str, ...]) -> bool:
    """True if the image is on ``allowed``: ``name``, ``name:tag``, image id or repo digest."""
    image = facts.image
    name = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    for entry in allowed:
        if entry in (image, facts.image_id) or entry in facts.repo_digests:
            return True
        if entry == name and "@" not in entry:
            return True
        if entry.startswith("sha256:") and facts.image_id == entry:
            return True
    return False


class AdmissionPolicy:
    """Evaluates the configured rules against a container's facts."""

    def __init__(
        self,
        actions: Mapping[str, Action] | None = None,
        *,
        allowed_images: tuple[str, ...] = (),
        findings: ImageFindingsCheck | None = None,
    ) -> None:
        merged = dict(DEFAULT_ACTIONS)
        for rule, action in (actions or {}).items():
            if rule not in RULES:
                raise ValueError(f"unknown admission rule {rule!r}; known: {', '.join(RULES)}")
            if action not in ("deny", "warn", "off"):
                raise ValueError(f"admission rule {rule}: action must be deny, warn or off")
            merged[rule] = action
        self.actions: dict[str, Action] = merged
        self.allowed_images = allowed_images
        self.findings = findings
        self._findings_cache: dict[str, int] = {}

    async def _findings_count(self, image: str) -> int:
        # An image id names immutable content and the scanner caches its verdict per id for
        # the process lifetime too; caching here saves an engine round trip per mount.
        if image in self._findings_cache:
            return self._findings_cache[image]
        assert self.findings is not None
        count = await self.findings.unresolved_findings(image)
        if image.startswith("sha256:"):
            self._findings_cache[image] = count
            while len(self._findings_cache) > 256:
                del self._findings_cache[next(iter(self._findings_cache))]
        return count

    async def evaluate(self, facts: ContainerFacts) -> Decision:
        """Check every enabled rule; denied if any ``deny`` rule triggers."""
        checks: list[tuple[str, bool, str]] = [
            ("privileged", facts.privileged, "container is privileged"),
            ("root_user", facts.runs_as_root, "container runs as uid 0 (set --user)"),
            (
                "docker_socket",
                facts.docker_socket_mounted,
                "the Docker socket is mounted into the container",
            ),
            (
                "no_limits",
                facts.memory_limit <= 0 or not facts.pids_limit or facts.pids_limit < 0,
                "container has no memory limit or no pids limit (set --memory and --pids-limit)",
            ),
            (
                "writable_rootfs",
                not facts.readonly_rootfs,
                "container root filesystem is writable (use --read-only)",
            ),
        ]
        if self.allowed_images and self.actions["image_not_allowed"] != "off":
            checks.append(
                (
                    "image_not_allowed",
                    not image_matches(facts, self.allowed_images),
                    f"image {facts.image[:120]!r} is not on the allowed list",
                )
            )
        if self.findings is not None and self.actions["image_findings"] != "off":
            count = await self._findings_count(facts.image_id or facts.image)
            checks.append(
                (
                    "image_findings",
                    count > 0,
                    f"image {facts.image[:120]!r} has {count} unresolved leak finding(s)",
                )
            )
        outcomes = tuple(
            RuleOutcome(rule, self.actions[rule], triggered and self.actions[rule] != "off", why)
            for rule, triggered, why in checks
        )
        allowed = not any(o.triggered and o.action == "deny" for o in outcomes)
        return Decision(allowed, outcomes)
