"""The security suite replays attacks against REAL services: the integration fixtures."""

from tests.integration.conftest import (  # noqa: F401
    busybox_image,
    docker_engine,
    openbao,
    postgres,
    vaultside_server,
)
