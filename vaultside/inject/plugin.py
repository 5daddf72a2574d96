"""Docker's (legacy) volume plugin protocol over a unix socket in ``/run/docker/plugins/``.

Every call is ``POST /<Method>`` with a JSON body; answers carry ``Err`` ("" on success).
Docker shows ``Err`` to the user (``docker run`` prints ``VolumeDriver.Mount: <Err>``), so
messages are the clear reasons our errors carry — never values.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from vaultside.errors import (
    ConflictError,
    InternalError,
    InvalidRequestError,
    NotFoundError,
    VaultsideError,
)
from vaultside.inject.volumes import VolumeManager
from vaultside.unix_socket import bind_unix

log = logging.getLogger(__name__)
PLUGIN_CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"
DEFAULT_SOCKET_DIR = Path("/run/docker/plugins")
Handler = Callable[[VolumeManager, dict[str, Any]], Awaitable[dict[str, Any]]]


def _reply(obj: dict[str, Any]) -> web.Response:
    return web.Response(text=json.dumps(obj), content_type="application/json")


async def _activate(_: VolumeManager, __: dict[str, Any]) -> dict[str, Any]:
    return {"Implements": ["VolumeDriver"]}


async def _capabilities(_: VolumeManager, __: dict[str, Any]) -> dict[str, Any]:
    return {"Capabilities": {"Scope": "local"}}


async def _create(vm: VolumeManager, body: dict[str, Any]) -> dict[str, Any]:
    opts = body.get("Opts") or {}
    if not isinstance(opts, dict):
        raise InvalidRequestError("Opts must be an object")
    await vm.create(str(body.get("Name", "")), {str(k): v for k, v in opts.items()})
    return {"Err": ""}


async def _remove(vm: VolumeManager, body: dict[str, Any]) -> dict[str, Any]:
    await vm.remove(str(body.get("Name", "")))
    return {"Err": ""}


async def _mount(vm: VolumeManager, body: dict[str, Any]) -> dict[str, Any]:
    point = await vm.mount(str(body.get("Name", "")), str(body.get("ID", "")))
    return {"Mountpoint": point, "Err": ""}


async def _unmount(vm: VolumeManager, body: dict[str, Any]) -> dict[str, Any]:
    await vm.unmount(str(body.get("Name", "")), str(body.get("ID", "")))
    return {"Err": ""}


async def _path(vm: VolumeManager, body: dict[str, Any]) -> dict[str, Any]:
    return {"Mountpoint": vm.get(str(body.get("Name", ""))).mountpoint, "Err": ""}


async def _get(vm: VolumeManager, body: dict[str, Any]) -> dict[str, Any]:
    rec = vm.get(str(body.get("Name", "")))
    return {"Volume": {"Name": rec.name, "Mountpoint": rec.mountpoint, "Status": {}}, "Err": ""}


async def _list(vm: VolumeManager, _: dict[str, Any]) -> dict[str, Any]:
    vols = [{"Name": r.name, "Mountpoint": r.mountpoint} for r in vm.list()]
    return {"Volumes": vols, "Err": ""}


HANDLERS: dict[str, Handler] = {
    "Plugin.Activate": _activate,
    "VolumeDriver.Capabilities": _capabilities,
    "VolumeDriver.Create": _create,
    "VolumeDriver.Remove": _remove,
    "VolumeDriver.Mount": _mount,
    "VolumeDriver.Unmount": _unmount,
    "VolumeDriver.Path": _path,
    "VolumeDriver.Get": _get,
    "VolumeDriver.List": _list,
}
VOLUME_MANAGER = web.AppKey("volume_manager", VolumeManager)


async def _dispatch(request: web.Request) -> web.Response:
    method = request.match_info["method"]
    handler = HANDLERS.get(method)
    if handler is None:
        return web.Response(status=404, text=json.dumps({"Err": f"unknown method {method[:64]}"}))
    try:
        raw = await request.read()
        body = json.loads(raw) if raw else {}
        if not isinstance(body, dict):
            body = {}
    except ValueError:
        return _reply({"Err": "request body is not JSON"})
    try:
        result = await handler(request.app[VOLUME_MANAGER], body)
    except NotFoundError as exc:
        log.debug("plugin call: not found", extra={"method": method, "error": exc.message})
        return _reply({"Err": f"vaultside: {exc.message}"})
    except InternalError as exc:
        log.error("plugin call failed", extra={"method": method, "error": exc.message})
        return _reply({"Err": f"vaultside: {exc.message}"})
    except VaultsideError as exc:
        log.info("plugin call refused", extra={"method": method, "error": exc.message})
        return _reply({"Err": f"vaultside: {exc.message}"})
    except Exception:
        log.exception("plugin call crashed", extra={"method": method})
        return _reply({"Err": "vaultside: internal error (see the plugin's log)"})
    return _reply(result)


def make_app(manager: VolumeManager) -> web.Application:
    """The aiohttp application speaking the volume plugin protocol."""
    app = web.Application(client_max_size=1024 * 1024)
    app[VOLUME_MANAGER] = manager
    app.router.add_post("/{method}", _dispatch)
    return app


class PluginServer:
    """Serves a ``VolumeManager`` on ``<socket_dir>/<name>.sock``.

    One socket per name: ``start`` refuses (``ConflictError``) while another process listens
    on it, and only takes over a stale socket nobody answers on; ``stop`` removes the socket
    only if it is still the one this server created (same device and inode), so stopping a
    plugin never deletes a successor's socket.
    """

    def __init__(
        self, manager: VolumeManager, *, name: str, socket_dir: Path = DEFAULT_SOCKET_DIR
    ) -> None:
        self.manager = manager
        self.socket_path = socket_dir / f"{name}.sock"
        self._runner: web.AppRunner | None = None
        self._created: tuple[int, int] | None = None

    async def start(self) -> None:
        """Refuse if the socket is taken, recover state, then listen."""
        # Before recover(): a second plugin must not touch the first one's mounts or state.
        await asyncio.to_thread(_refuse_if_served, self.socket_path)
        await self.manager.recover()
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self._runner = web.AppRunner(make_app(self.manager), access_log=None)
        await self._runner.setup()
        # SECURITY: only root (dockerd) may talk to the plugin; the mode is set before listen.
        # (bind_unix replaces a stale socket file: nobody answered on it just now.)
        await web.SockSite(self._runner, bind_unix(self.socket_path, 0o600)).start()
        st = os.stat(self.socket_path)
        self._created = (st.st_dev, st.st_ino)
        log.info("volume plugin listening", extra={"socket": str(self.socket_path)})

    async def stop(self) -> None:
        """Stop listening; mounts stay (a restarted plugin recovers them)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        created, self._created = self._created, None
        if created is None:
            return
        try:
            st = os.stat(self.socket_path)
        except FileNotFoundError:
            return
        if (st.st_dev, st.st_ino) == created:
            self.socket_path.unlink(missing_ok=True)
        else:
            log.warning(
                "plugin socket was replaced; leaving it", extra={"socket": str(self.socket_path)}
            )


def _refuse_if_served(path: Path) -> None:
    """``ConflictError`` if a process accepts connections on the unix socket ``path``."""
    if not path.is_socket():
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2.0)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return  # stale socket file: its plugin is gone
        except OSError as exc:
            raise ConflictError(
                f"cannot tell whether another plugin is serving on {path} "
                f"({exc.strerror or type(exc).__name__}); refusing to take it over"
            ) from exc
    raise ConflictError(
        f"another plugin is serving on {path}; stop it first or choose another --name"
    )
