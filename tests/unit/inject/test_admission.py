"""Admission rules: each deny / warn / off."""

from __future__ import annotations

import pytest

from vaultside.inject.admission import AdmissionPolicy, ContainerFacts, image_matches

from .conftest import safe_container


async def test_safe_container_is_admitted_without_warnings() -> None:
    decision = await AdmissionPolicy().evaluate(safe_container())
    assert decision.allowed and not decision.denials and not decision.warnings


@pytest.mark.parametrize(
    ("change", "rule", "default_denies"),
    [
        ({"privileged": True}, "privileged", True),
        ({"user": ""}, "root_user", False),
        ({"user": "root"}, "root_user", False),
        ({"user": "0:0"}, "root_user", False),
        ({"docker_socket_mounted": True}, "docker_socket", True),
        ({"memory_limit": 0}, "no_limits", False),
        ({"pids_limit": None}, "no_limits", False),
        ({"pids_limit": -1}, "no_limits", False),
        ({"readonly_rootfs": False}, "writable_rootfs", False),
    ],
)
async def test_each_rule(change: dict[str, object], rule: str, default_denies: bool) -> None:
    facts = safe_container(**change)
    decision = await AdmissionPolicy().evaluate(facts)
    assert decision.allowed is not default_denies
    hit = [o for o in decision.outcomes if o.triggered]
    assert [o.rule for o in hit] == [rule]
    deny = await AdmissionPolicy({rule: "deny"}).evaluate(facts)
    assert not deny.allowed and deny.denials == [hit[0].reason]
    off = await AdmissionPolicy({rule: "off"}).evaluate(facts)
    assert off.allowed and not off.warnings and not off.denials


async def test_allowed_images() -> None:
    policy = AdmissionPolicy(allowed_images=("vaultside-test/busybox",))
    assert (await policy.evaluate(safe_container())).allowed
    other = safe_container(image="evil/miner:latest")
    decision = await policy.evaluate(other)
    assert not decision.allowed
    assert "evil/miner:latest" in decision.denials[0]


def test_image_matching_forms() -> None:
    facts = ContainerFacts(
        id="x", name="x", image="reg.example/app:1.2", image_id="sha256:" + "b" * 64,
        repo_digests=("reg.example/app@sha256:" + "c" * 64,),
    )  # fmt: skip
    assert image_matches(facts, ("reg.example/app:1.2",))
    assert image_matches(facts, ("reg.example/app",))
    assert image_matches(facts, ("sha256:" + "b" * 64,))
    assert image_matches(facts, ("reg.example/app@sha256:" + "c" * 64,))
    assert not image_matches(facts, ("reg.example/app:1.3",))
    assert not image_matches(facts, ("reg.example/ap",))
    assert not image_matches(facts, ("sha256:" + "d" * 64,))


class Findings:
    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts
        self.asked: list[str] = []

    async def unresolved_findings(self, image_ref: str) -> int:
        self.asked.append(image_ref)
        return self.counts.get(image_ref, 0)


async def test_image_findings_hook() -> None:
    facts = safe_container()
    hook = Findings({facts.image_id: 2})
    decision = await AdmissionPolicy({"image_findings": "deny"}, findings=hook).evaluate(facts)
    assert not decision.allowed and "2 unresolved leak finding(s)" in decision.denials[0]
    assert hook.asked == [facts.image_id]
    clean = await AdmissionPolicy({"image_findings": "deny"}, findings=Findings({})).evaluate(facts)
    assert clean.allowed


def test_unknown_rule_or_action_rejected() -> None:
    with pytest.raises(ValueError, match="unknown admission rule"):
        AdmissionPolicy({"nope": "deny"})
    with pytest.raises(ValueError, match="deny, warn or off"):
        AdmissionPolicy({"privileged": "maybe"})  # type: ignore[dict-item]


async def test_findings_verdict_cached_per_image_id() -> None:
    facts = safe_container()
    hook = Findings({facts.image_id: 1})
    policy = AdmissionPolicy({"image_findings": "deny"}, findings=hook)
    for _ in range(3):
        assert not (await policy.evaluate(facts)).allowed
    assert hook.asked == [facts.image_id]
