"""Prometheus metrics of rotations. Labels are target kinds and results, never paths."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class RotationMetrics:
    """Rotation counters, durations and the size of the schedule."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.rotations = Counter(
            "vaultside_rotations_total",
            "Rotation runs by target kind and result (ok, failed).",
            ["target", "result"],
            registry=self.registry,
        )
        self.rollbacks = Counter(
            "vaultside_rotation_rollbacks_total",
            "Rollbacks by target kind and outcome (ok, failed).",
            ["target", "outcome"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "vaultside_rotation_duration_seconds",
            "Time from create_pending to finish, by target kind.",
            ["target"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.policies = Gauge(
            "vaultside_rotation_policies",
            "Rotation policies the active scheduler knows.",
            registry=self.registry,
        )
        self.leader = Gauge(
            "vaultside_rotation_scheduler_leader",
            "1 while this process holds the scheduler lease.",
            registry=self.registry,
        )
