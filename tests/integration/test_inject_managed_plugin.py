"""The managed Docker plugin (``make plugin``) created and enabled on a REAL dockerd.

The plugin is assembled exactly as ``make plugin`` does (``scripts/build-plugin``: the image
built from deploy/Dockerfile on the stand-in base, exported as rootfs, plus
deploy/plugin/config.json), then ``docker plugin create`` (no registry), ``docker plugin set``
and ``docker plugin enable``. Containers get their files through it, admission refuses what
the host plugin refuses, and a new secret version reaches a running container.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from .services.docker_engine import DockerEngine
from .services.process import remove_tree, short_tempdir
from .services.vaultside_server import VaultsideServer, VaultsideServerFactory
from .stack import SAFE, api, make_token
from .test_deploy_support import REPO, build_vaultside_image, unavailable

# The image build (apt-get + pip wheel) and `docker plugin create` take minutes on a busy host.
pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]


@dataclass
class Managed:
    """An enabled managed plugin on ``engine``; ``name`` is unique (engines share nothing
    for managed plugins, but a unique name keeps logs and volumes apart)."""

    engine: DockerEngine
    server: VaultsideServer
    name: str
    image: str
    value: str

    def docker(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", *args], env=self.engine.env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip

    def must(self, *args: str, timeout: float = 120) -> str:
        done = self.docker(*args, timeout=timeout)
        assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr}"
        return done.stdout

    def mount_arg(self, volume: str, ref: str = "kv:app/db#password") -> str:
        return (
            f"type=volume,volume-driver={self.name},src={volume},dst=/run/secrets,"
            f"volume-opt=secret.pw={ref},volume-opt=uid=1000,volume-opt=gid=1000"
        )


@pytest.fixture(scope="module")
def managed(
    docker_engine: DockerEngine, busybox_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Managed]:
    work = tmp_path_factory.mktemp("managed")
    try:
        image = build_vaultside_image(docker_engine, work)
    except AssertionError as exc:
        unavailable(f"cannot build the vaultside image here: {str(exc)[:300]}")
    plugin_dir = work / "plugin"
    built = subprocess.run(
        [str(REPO / "scripts" / "build-plugin"), image, str(plugin_dir)],
        env=docker_engine.env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    root = short_tempdir("mplug")
    factory = VaultsideServerFactory(root / "srv")
    name = f"vs-managed-{secrets.token_hex(4)}"
    try:
        server = factory()
        value = f"p:{secrets.token_urlsafe(18)}"
        api(server, "PUT", "secrets/app/db", {"data": {"password": value}})
        config = root / "config"
        config.mkdir(mode=0o700)
        read_app = [{"path": "secrets/app/*", "capabilities": ["read"]}]
        make_token(server, "web", read_app, config / "web.token")
        (config / "roles.toml").write_text('[roles.web]\ntoken_file = "web.token"\n')
        st = Managed(docker_engine, server, name, busybox_image, value)
        st.must("plugin", "create", name, str(plugin_dir), timeout=300)
        try:
            st.must(
                "plugin", "set", name,
                f"VAULTSIDE_ADDR={server.addr}",
                "VAULTSIDE_INJECT__ADMISSION__ROOT_USER=deny",
                f"config.source={config}",
                f"engine-state.source={docker_engine.data_root / 'containers'}",
            )  # fmt: skip
            st.must("plugin", "enable", name, timeout=120)
            yield st
        finally:
            listed = st.docker("volume", "ls", "-q", "--filter", f"driver={name}")
            if listed.stdout.split():
                st.docker("volume", "rm", "-f", *listed.stdout.split())
            st.docker("plugin", "disable", "-f", name)
            st.docker("plugin", "rm", "-f", name)
    finally:
        factory.close()
        remove_tree(root)


def test_plugin_is_installed_as_docker_users_expect(managed: Managed) -> None:
    out = managed.must(
        "plugin", "inspect", managed.name, "--format",
        "{{.Enabled}} {{.Config.Interface.Types}} {{.Config.Linux.Capabilities}}"
        " {{.Config.PropagatedMount}} {{.Config.Network.Type}}",
    )  # fmt: skip
    assert out.split() == [
        "true", "[docker.volumedriver/1.0]", "[CAP_SYS_ADMIN]", "/mnt/volumes", "host",
    ]  # fmt: skip


def test_container_reads_its_secret_file_through_the_managed_plugin(managed: Managed) -> None:
    vol = f"mv{secrets.token_hex(4)}"
    run = managed.docker(
        "run", "--rm", "--network", "none", *SAFE, "--label", "io.vaultside.role=web",
        "--mount", managed.mount_arg(vol), managed.image,
        "sh", "-c", "stat -c '%u:%g %a' /run/secrets/pw; grep ' /run/secrets ' /proc/mounts;"
        " echo ==; cat /run/secrets/pw",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    meta, _, content = run.stdout.partition("==\n")
    assert content == managed.value
    assert meta.startswith("1000:1000 400\n") and " tmpfs " in meta


def test_admission_refuses_what_the_host_plugin_refuses(managed: Managed) -> None:
    vol = f"mv{secrets.token_hex(4)}"
    base = ["run", "--rm", "--network", "none", "--mount", managed.mount_arg(vol)]
    cmd = [managed.image, "cat", "/run/secrets/pw"]
    priv = managed.docker(*base, *SAFE, "--privileged", "--label", "io.vaultside.role=web", *cmd)
    assert priv.returncode != 0 and "container is privileged" in priv.stderr
    root = managed.docker(*base, "--user", "0", "--label", "io.vaultside.role=web", *cmd)
    assert root.returncode != 0 and "runs as uid 0" in root.stderr
    unlabelled = managed.docker(*base, *SAFE, *cmd)
    assert unlabelled.returncode != 0 and "io.vaultside.role" in unlabelled.stderr
    assert managed.value not in priv.stdout + root.stdout + unlabelled.stdout


def test_new_version_reaches_the_running_container(managed: Managed) -> None:
    vol = f"mv{secrets.token_hex(4)}"
    cid = managed.must(
        "run", "-d", "--network", "none", *SAFE, "--label", "io.vaultside.role=web",
        "--mount", managed.mount_arg(vol), managed.image, "sleep", "300",
    ).strip()  # fmt: skip
    try:
        assert managed.must("exec", cid, "cat", "/run/secrets/pw") == managed.value
        new = f"p:{secrets.token_urlsafe(18)}"
        api(managed.server, "PUT", "secrets/app/db", {"data": {"password": new}})
        deadline = time.monotonic() + 30
        seen = ""
        while time.monotonic() < deadline:
            seen = managed.must("exec", cid, "cat", "/run/secrets/pw")
            if seen == new:
                break
            time.sleep(0.3)
        assert seen == new
    finally:
        managed.docker("rm", "-f", cid)
