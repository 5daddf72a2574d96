"""``/metrics``: OpenMetrics negotiation, ``metrics.require_token`` and ``metrics.listen``."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from .conftest import Api, ApiFactory
from .test_listeners import serving

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


async def test_openmetrics_when_the_scraper_asks_for_it(api: Api) -> None:
    await api.client.get("/v1/sys/health")
    resp = await api.client.get("/metrics", headers={"Accept": f"{OPENMETRICS},text/plain;q=0.5"})
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
    text = await resp.text()
    assert text.endswith("# EOF\n") and text.count("# EOF") == 1  # one exposition
    assert "vaultside_http_requests_total" in text and "vaultside_sealed" in text
    plain = await api.client.get("/metrics")
    assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "# EOF" not in await plain.text()


async def test_require_token_needs_read_on_sys_metrics(make_api: ApiFactory) -> None:
    api: Api = await make_api(metrics={"require_token": True})
    assert (await api.client.get("/metrics")).status == 403
    await api.policy("scrape", [{"path": "sys/metrics", "capabilities": ["read"]}])
    await api.policy("other", [{"path": "secrets/*", "capabilities": ["read"]}])
    other = await api.token("other")
    resp = await api.client.get("/metrics", headers=api.auth(other))
    assert resp.status == 403
    scraper = await api.token("scrape")
    resp = await api.client.get("/metrics", headers=api.auth(scraper))
    assert resp.status == 200 and "vaultside_http_requests_total" in await resp.text()
    # The probe stays public; only /metrics changed.
    assert (await api.client.get("/v1/sys/health")).status == 200


async def test_metrics_default_stays_public_on_the_api_port(api: Api) -> None:
    assert (await api.client.get("/metrics")).status == 200


async def test_own_listener_serves_metrics_only(tmp_path: Path) -> None:
    async with (
        serving(tmp_path, metrics_listen="127.0.0.1:0") as bound,
        aiohttp.ClientSession() as session,
    ):
        assert bound.metrics_url is not None
        assert bound.metrics_url.startswith("http://127.0.0.1:")
        async with session.get(bound.metrics_url) as r:
            assert r.status == 200 and "vaultside_sealed" in await r.text()
        base = bound.metrics_url.removesuffix("/metrics")
        async with session.get(f"{base}/v1/sys/health") as r:
            assert r.status == 404  # the API is not on the metrics port
        async with session.get(f"{bound.primary}/metrics") as r:
            assert r.status == 404  # and metrics are not on the API port
        async with session.get(f"{bound.primary}/v1/sys/health") as r:
            assert r.status == 200
