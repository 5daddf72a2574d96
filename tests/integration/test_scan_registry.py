"""``vaultside scan registry`` against the REAL reference registry on loopback, no daemon used.

Images are built and pushed by the test dockerd (Docker v2 manifests, gzip layers); a
multi-platform OCI index and an OCI image with a zstd layer are added through the registry's
HTTP API. The scanner then reads them through an open registry, an htpasswd (Basic) registry
behind a self-signed TLS certificate, and a Bearer-token registry, with ``DOCKER_HOST``
pointing nowhere. Every planted credential is generated here, at test time.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard

from tests.unit.scan.credgen import AN, HEX, github_token, rnd

from .services.fixtures import _start
from .services.registry import RegistrySet

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"

RNG = random.Random(4242)
P = {
    "env": "glpat-" + rnd(RNG, AN, 20),
    "file": "AKIA" + rnd(RNG, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16),
    "deleted": "npm_" + rnd(RNG, AN, 36),
    "arm": github_token(RNG),
    "zstd": "rubygems_" + rnd(RNG, HEX, 48),
}


@pytest.fixture(scope="module")
def registries() -> Iterator[RegistrySet]:
    regs = _start("docker-registry", RegistrySet.start)
    try:
        yield regs
    finally:
        regs.close()


def _push(engine: Any, tag: str) -> None:
    repo, _, version = tag.rpartition(":")
    for line in engine.client.images.push(repo, tag=version, stream=True, decode=True):
        assert "error" not in line, line


def _build(engine: Any, ctx: Path, tag: str) -> None:
    engine.client.images.build(path=str(ctx), tag=tag, rm=True, forcerm=True)


@pytest.fixture(scope="module")
def pushed(
    docker_engine: Any, busybox_image: str, registries: RegistrySet, tmp_path_factory: Any
) -> dict[str, Any]:
    """leaky:1 (amd64 content), leaky:arm, leaky:multi (an OCI index), oci:zstd."""
    host = registries.open.host
    ctx: Path = tmp_path_factory.mktemp("reg-leaky")
    (ctx / "config.yml").write_text(f"aws_access_key_id: {P['file']}\n")
    (ctx / "secrets.txt").write_text(f"x\nNPM_TOKEN={P['deleted']}\n")
    (ctx / "Dockerfile").write_text(
        f"FROM {busybox_image}\n"
        f"ENV GITLAB_TOKEN={P['env']}\n"
        "COPY config.yml /etc/app/config.yml\n"
        "COPY secrets.txt /tmp/secrets.txt\n"
        "RUN rm /tmp/secrets.txt\n"
    )
    _build(docker_engine, ctx, f"{host}/leaky:1")
    _push(docker_engine, f"{host}/leaky:1")
    arm: Path = tmp_path_factory.mktemp("reg-arm")
    (arm / "app.env").write_text(f"GITHUB_TOKEN={P['arm']}\n")
    (arm / "Dockerfile").write_text(f"FROM {busybox_image}\nCOPY app.env /srv/app.env\n")
    _build(docker_engine, arm, f"{host}/leaky:arm")
    _push(docker_engine, f"{host}/leaky:arm")

    amd_man, amd_raw = registries.get_manifest("leaky", "1", DOCKER_MANIFEST)
    _arm_man, arm_raw = registries.get_manifest("leaky", "arm", DOCKER_MANIFEST)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": DOCKER_MANIFEST,
                "digest": "sha256:" + hashlib.sha256(raw).hexdigest(),
                "size": len(raw),
                "platform": plat,
            }
            for raw, plat in (
                (amd_raw, {"os": "linux", "architecture": "amd64"}),
                (arm_raw, {"os": "linux", "architecture": "arm64", "variant": "v8"}),
            )
        ],
    }
    registries.put_manifest("leaky", "multi", index, OCI_INDEX)

    # An OCI image whose one layer is zstd-compressed, made through the API.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = f"RUBYGEMS_API_KEY={P['zstd']}\n".encode()
        info = tarfile.TarInfo("etc/gem/credentials")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    layer_tar = buf.getvalue()
    layer = zstandard.ZstdCompressor().compress(layer_tar)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/bin"]},
            "rootfs": {
                "type": "layers",
                "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()],
            },
            "history": [{"created_by": "COPY credentials /etc/gem/credentials # buildkit"}],
        }
    ).encode()
    layer_digest = registries.put_blob("oci", layer)
    config_digest = registries.put_blob("oci", config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
                "digest": layer_digest,
                "size": len(layer),
            }
        ],
    }
    registries.put_manifest("oci", "zstd", manifest, OCI_MANIFEST)
    return {"amd_manifest": amd_man, "zstd_layer": layer_digest}


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    """No daemon, no credentials: an empty Docker config dir."""
    conf = tmp_path / "docker-config"
    conf.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("VAULTSIDE_REGISTRY_") and k != "DOCKER_HOST"
    }
    return {**env, "DOCKER_HOST": "unix:///nonexistent.sock", "DOCKER_CONFIG": str(conf)}


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vaultside", "scan", *args],
        env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip


def _by_value(out: str) -> dict[str, dict[str, Any]]:
    return {f["value"]: f for f in json.loads(out)["findings"] if "value" in f}


def test_registry_scan_finds_plants_with_layer_attribution(
    registries: RegistrySet, pushed: dict[str, Any], clean_env: dict[str, str]
) -> None:
    ref = f"{registries.open.host}/leaky:1"
    res = _cli(["registry", ref, "--format", "json", "--reveal"], clean_env)
    assert res.returncode == 1, res.stderr
    found = _by_value(res.stdout)
    for k in ("env", "file", "deleted"):
        assert P[k] in found, (k, res.stdout[:2000])
    layer_digests = {d["digest"] for d in pushed["amd_manifest"]["layers"]}
    loc = found[P["file"]]["location"]
    assert (loc["kind"], loc["target"]) == ("registry", ref)
    assert (loc["path"], loc["line"]) == ("etc/app/config.yml", 1)
    assert loc["layer"] in layer_digests
    assert "COPY" in loc["created_by"] and "config.yml" in loc["created_by"]
    deleted = found[P["deleted"]]["location"]
    assert (deleted["path"], deleted["status"]) == ("tmp/secrets.txt", "deleted")
    assert found[P["env"]]["location"]["path"] in ("config/Env", "config/history")
    assert P["arm"] not in found


def test_manifest_list_platform_selection(
    registries: RegistrySet, pushed: dict[str, Any], clean_env: dict[str, str]
) -> None:
    ref = f"{registries.open.host}/leaky:multi"
    arm = _cli(
        ["registry", ref, "--platform", "linux/arm64", "--format", "json", "--reveal"], clean_env
    )
    assert arm.returncode == 1, arm.stderr
    assert P["arm"] in _by_value(arm.stdout) and P["file"] not in _by_value(arm.stdout)
    amd = _cli(
        ["registry", ref, "--platform", "linux/amd64", "--format", "json", "--reveal"], clean_env
    )
    assert amd.returncode == 1, amd.stderr
    assert P["file"] in _by_value(amd.stdout) and P["arm"] not in _by_value(amd.stdout)
    missing = _cli(["registry", ref, "--platform", "linux/s390x"], clean_env)
    assert missing.returncode == 4, missing.stderr
    assert "linux/s390x" in missing.stderr and "linux/arm64/v8" in missing.stderr


def test_oci_manifest_with_zstd_layer(
    registries: RegistrySet, pushed: dict[str, Any], clean_env: dict[str, str]
) -> None:
    ref = f"{registries.open.host}/oci:zstd"
    res = _cli(["image", "--remote", ref, "--format", "json", "--reveal"], clean_env)
    assert res.returncode == 1, res.stderr
    loc = _by_value(res.stdout)[P["zstd"]]["location"]
    assert (loc["path"], loc["layer"]) == ("etc/gem/credentials", pushed["zstd_layer"])
    assert loc["created_by"].startswith("COPY credentials")


def test_missing_image_and_bad_reference(
    registries: RegistrySet, pushed: dict[str, Any], clean_env: dict[str, str]
) -> None:
    res = _cli(["registry", f"{registries.open.host}/leaky:nope"], clean_env)
    assert res.returncode == 4 and "not found" in res.stderr, res.stderr
    bad = _cli(["registry", f"{registries.open.host}/Bad Repo:1"], clean_env)
    assert bad.returncode == 2 and "bad repository" in bad.stderr, bad.stderr


def test_tls_errors_and_ca_option(
    registries: RegistrySet, pushed: dict[str, Any], clean_env: dict[str, str]
) -> None:
    ref = f"{registries.basic_tls.host}/leaky:1"
    res = _cli(["registry", ref], clean_env)
    assert res.returncode == 6, res.stderr
    assert "TLS" in res.stderr and "certificate verify failed" in res.stderr, res.stderr
    assert "--ca-file" in res.stderr and "Traceback" not in res.stderr
    # asking for plain http does not bypass TLS on this registry either: it speaks TLS only
    with_ca = _cli(["registry", ref, "--ca-file", str(registries.ca_file)], clean_env)
    assert with_ca.returncode == 3, with_ca.stderr  # TLS fine now; no credentials


def test_basic_auth_from_docker_config(
    registries: RegistrySet, pushed: dict[str, Any], clean_env: dict[str, str]
) -> None:
    ref = f"{registries.basic_tls.host}/leaky:1"
    args = ["registry", ref, "--ca-file", str(registries.ca_file), "--format", "json", "--reveal"]
    anon = _cli(args, clean_env)
    assert anon.returncode == 3, anon.stderr
    assert "refused" in anon.stderr and "anonymously" in anon.stderr
    conf = Path(clean_env["DOCKER_CONFIG"]) / "config.json"
    wrong = base64.b64encode(f"{registries.username}:not-the-password".encode()).decode()
    conf.write_text(json.dumps({"auths": {registries.basic_tls.host: {"auth": wrong}}}))
    denied = _cli(args, clean_env)
    assert denied.returncode == 3 and "config.json" in denied.stderr, denied.stderr
    good = base64.b64encode(f"{registries.username}:{registries.password}".encode()).decode()
    conf.write_text(json.dumps({"auths": {registries.basic_tls.host: {"auth": good}}}))
    ok = _cli(args, clean_env)
    assert ok.returncode == 1, ok.stderr
    assert P["file"] in _by_value(ok.stdout)
    for out in (anon, denied, ok):
        assert registries.password not in out.stdout + out.stderr


def test_bearer_token_flow_with_env_credentials(
    registries: RegistrySet, pushed: dict[str, Any], clean_env: dict[str, str]
) -> None:
    ref = f"{registries.token.host}/leaky:1"
    anon = _cli(["registry", ref], clean_env)
    assert anon.returncode == 3, anon.stderr
    env = {
        **clean_env,
        "VAULTSIDE_REGISTRY_USERNAME": registries.username,
        "VAULTSIDE_REGISTRY_PASSWORD": registries.password,
    }
    ok = _cli(["registry", ref, "--format", "json", "--reveal"], env)
    assert ok.returncode == 1, ok.stderr
    assert P["file"] in _by_value(ok.stdout)
    scopes = [r["scope"] for r in registries.token_server.requests if r["has_auth"]]
    assert ["repository:leaky:pull"] in scopes
    assert registries.password not in ok.stderr + anon.stderr


_NO_WRITES = textwrap.dedent(
    """
    import os, sys
    writes = []
    WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & WRITE_FLAGS
            ):
                writes.append(str(path))
        elif event in ("os.rename", "os.replace", "os.mkdir", "os.link", "os.symlink",
                       "shutil.copyfile", "os.truncate", "tempfile.mkstemp", "tempfile.mkdtemp"):
            writes.append(event + ":" + str(args[0]))

    sys.addaudithook(hook)
    import atexit
    atexit.register(lambda: sys.stderr.write("\\nWRITES=" + repr(writes) + "\\n"))
    from vaultside.cli.main import main
    sys.argv = ["vaultside", "scan", *sys.argv[1:]]
    main()
    """
)


def test_nothing_is_written_to_disk(
    registries: RegistrySet, pushed: dict[str, Any], clean_env: dict[str, str]
) -> None:
    """Every file opened for writing (audit hook on ``open``/``os.open`` and friends): none."""
    ref = f"{registries.open.host}/leaky:1"
    res = subprocess.run(
        [sys.executable, "-c", _NO_WRITES, "registry", ref, "--format", "json", "--no-progress"],
        env=clean_env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert res.returncode == 1, res.stderr
    assert P["file"] in res.stdout or json.loads(res.stdout)["findings"]
    assert "WRITES=[]" in res.stderr, res.stderr[-2000:]
    # the check can fail: a report written with --output is seen
    out = Path(clean_env["DOCKER_CONFIG"]) / "report.json"
    seen = subprocess.run(
        [sys.executable, "-c", _NO_WRITES, "registry", ref, "--no-progress", "-o", str(out)],
        env=clean_env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert f"WRITES=['{out}']" in seen.stderr, seen.stderr[-2000:]
