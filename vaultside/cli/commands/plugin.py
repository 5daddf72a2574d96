"""``vaultside plugin``: run the Docker volume plugin on ``/run/docker/plugins/<name>.sock``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from vaultside import errors
from vaultside.cli.render import exit_code_for, fail
from vaultside.cli.settings import settings_or_exit
from vaultside.clock import SystemClock
from vaultside.config.settings import Settings
from vaultside.lifecycle import run_until_signal
from vaultside.logs import setup_logging
from vaultside.wiring.plugin import plugin_component


async def _serve(settings: Settings) -> None:
    plugin = plugin_component(settings, clock=SystemClock(), in_server=False)

    async def announce() -> None:
        if plugin.server is not None:
            click.echo(
                f"vaultside volume plugin listening on {plugin.server.socket_path}", err=True
            )

    await run_until_signal([plugin], on_ready=announce)


@click.command("plugin")
@click.option("--name", help="Plugin (driver) name; the socket is <socket-dir>/<name>.sock.")
@click.option("--roles", "roles_file", type=click.Path(path_type=Path), help="Roles TOML file.")
@click.option("--socket-dir", type=click.Path(path_type=Path), help="Default /run/docker/plugins.")
@click.option(
    "--mount-root", type=click.Path(path_type=Path), help="Where tmpfs volumes are mounted."
)
@click.option("--state-dir", type=click.Path(path_type=Path), help="Plugin state (no values).")
@click.option("--docker-host", help="Docker engine URL, e.g. unix:///var/run/docker.sock.")
@click.option("--audit-file", type=click.Path(path_type=Path), help="Admission audit (JSON lines).")
def cli(
    name: str | None,
    roles_file: Path | None,
    socket_dir: Path | None,
    mount_root: Path | None,
    state_dir: Path | None,
    docker_host: str | None,
    audit_file: Path | None,
) -> None:
    """Serve the Docker volume plugin (secrets as files on tmpfs). Needs root.

    The vaultside server is VAULTSIDE_ADDR; each role resolves with its own token file.

    \b
    Example:
      vaultside plugin --name vaultside --roles /etc/vaultside/roles.toml
    """
    settings = settings_or_exit()
    setup_logging(settings.log_level, settings.log_format)
    overrides = {
        "plugin_name": name,
        "roles_file": roles_file,
        "plugin_socket_dir": socket_dir,
        "mount_root": mount_root,
        "state_dir": state_dir,
        "docker_host": docker_host,
        "audit_file": audit_file,
    }
    inject = settings.inject.model_copy(
        update={k: v for k, v in overrides.items() if v is not None}
    )
    settings = settings.model_copy(update={"inject": inject})
    try:
        asyncio.run(_serve(settings))
    except errors.VaultsideError as exc:
        fail(exc.message, exit_code_for(exc))
    except KeyboardInterrupt:
        pass
