"""The service: the route table filled by the endpoint modules, served on a socket."""

from __future__ import annotations

import socket

from shellctr.api import archive, containers, execs, images, networks, output, system, volumes
from shellctr.api.server import Service
from shellctr.core.layout import Layout

# each adds its routes as it is imported
ENDPOINTS = (containers, output, archive, execs, images, networks, volumes, system)


def serve(sock: socket.socket, layout: Layout, idle: float, *, trace: bool = False,
          debug: bool = False) -> None:
    """Serve the API on the listening `sock` until `idle` seconds pass without a request
    (0: until stopped)."""
    service = Service(sock, layout, trace=trace, debug=debug)
    try:
        service.serve_until_idle(idle)
    finally:
        service.server_close()
