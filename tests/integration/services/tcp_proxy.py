"""A loopback TCP proxy for fault injection between a server and its upstream (PostgreSQL).

``TcpProxy`` forwards bytes both ways, one thread per direction per connection. A subclass
decides what happens to a new connection (``admit``: return False to leave it hanging) and to
each chunk before it is forwarded (``gate``: block to stall the network).
"""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    """Listens on ``127.0.0.1:port`` and forwards every admitted connection to ``upstream``."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def admit(self, conn: socket.socket) -> bool:
        """Called for each accepted connection; False leaves it unforwarded."""
        return True

    def gate(self) -> None:
        """Called before each chunk is forwarded (in either direction); may block."""
        return None

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while chunk := a.recv(65536):
                self.gate()
                b.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if not self.admit(conn):
                continue
            try:
                up = socket.create_connection(self.upstream)
            except OSError:
                conn.close()
                continue
            self._conns += [conn, up]
            threading.Thread(target=self._pipe, args=(conn, up), daemon=True).start()
            threading.Thread(target=self._pipe, args=(up, conn), daemon=True).start()

    def close(self) -> None:
        """Stop listening and close the forwarded connections."""
        self._stop = True
        self.sock.close()
        for s in self._conns:
            with contextlib.suppress(OSError):
                s.close()
