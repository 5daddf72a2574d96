"""The layering contract (``.importlinter``, run by ``make lint``) holds and catches what breaks it.

The second test copies the package to a temp dir, adds one import from a low layer to a high
one and checks that ``lint-imports`` fails naming it: the check cannot silently pass.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    if not LINT_IMPORTS.exists():
        pytest.fail("lint-imports is missing: `make dev-deps` installs import-linter")
    env = {**os.environ, "PYTHONPATH": str(tree)}  # the copy, not the installed package
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _copy(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(
        ROOT / "vaultside", tree / "vaultside", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / ".importlinter", tree / ".importlinter")
    return tree


def test_the_layers_hold() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 broken." in result.stdout


NOT_ALLOWED = "vaultside.{} is not allowed to import vaultside.{}"
CYCLE = "No cycles are allowed in vaultside.{}"


@pytest.mark.parametrize(
    ("module", "line", "expected"),
    [
        # storage is below everything that stores: it must not know a service.
        ("storage/base.py", "import vaultside.kv.store", NOT_ALLOWED.format("storage", "kv")),
        # rotation is below inject (re-delivery is inject's; rotation has only a protocol).
        (
            "rotation/base.py",
            "import vaultside.inject.redeliver",
            NOT_ALLOWED.format("rotation", "inject"),
        ),
        # the barrier knows a transit client protocol, not the broker.
        ("crypto/aead.py", "import vaultside.broker.base", NOT_ALLOWED.format("crypto", "broker")),
        # a cycle inside one package.
        ("auth/records.py", "import vaultside.auth.tokens", CYCLE.format("auth")),
    ],
)
def test_an_upward_import_fails_the_check(
    tmp_path: Path, module: str, line: str, expected: str
) -> None:
    tree = _copy(tmp_path)
    path = tree / "vaultside" / module
    path.write_text(path.read_text() + f"\n{line}  # noqa: E402\n")
    result = _lint_imports(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    assert expected in result.stdout
