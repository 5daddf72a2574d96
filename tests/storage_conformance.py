"""The pytest side of ``vaultside.storage.conformance``: one test per check and backend.

A backend's test module writes::

    @each_check
    async def test_conformance(check: Check, tmp_path: Path) -> None:
        await run_check(check, make, reopen)
"""

from __future__ import annotations

import pytest

from vaultside.storage.conformance import CHECKS, check_id

each_check = pytest.mark.parametrize("check", CHECKS, ids=check_id)
