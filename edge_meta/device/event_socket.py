"""The daemon's events on a Unix stream socket: every connected client receives every JSON line.

The socket lives in a private directory (created 0700; an existing one must belong to this user and
be closed to others) and is itself 0600, so only the daemon's user can listen in. A slow client that
lets its buffer fill is dropped rather than allowed to stall detection. A stale socket file left by
a killed daemon is replaced; a live one (another daemon) is an error.
"""

from __future__ import annotations

import logging
import os
import pwd
import select
import socket
import stat
import threading
from pathlib import Path

from edge_meta.errors import ConfigError

log = logging.getLogger("edge_meta.device")
MAX_CLIENTS = 64  # listeners at once; more are refused (each holds a descriptor)
MAX_PATH_BYTES = 107  # sun_path holds 108 bytes on Linux, the last one a NUL


def private_dir(path: Path) -> None:
    """Create ``path`` 0700, or check that an existing one is this user's and closed to group and others. The fix
    for one that is not is a folder of the daemon's own inside it, never a change to it: /tmp made 0700 breaks every
    other program on the machine."""
    if not path.exists():
        try:
            path.mkdir(mode=0o700, parents=True)
            os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
        except OSError as exc:
            raise ConfigError(f"{path}: cannot create the socket directory ({exc.strerror})",
                              "choose a --socket path in a writable directory, e.g. $XDG_RUNTIME_DIR/edge-meta/") from None
        return
    st = path.stat()
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{path}: is not a directory", "choose another --socket path")
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        own = path / f"edge-meta-{pwd.getpwuid(os.getuid()).pw_name}" / "events.sock"
        raise ConfigError(f"{path}: the socket directory is not private (mode {stat.S_IMODE(st.st_mode):o}, "
                          f"owner uid {st.st_uid}): others could connect and hear every event",
                          f"give the socket a folder of its own, e.g. --socket {own} (created 0700)")


class EventSocket:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        size = len(os.fsencode(self.path))
        if size > MAX_PATH_BYTES:  # bind would fail with an error whose strerror is None
            raise ConfigError(f"{self.path}: the socket path is {size} bytes long; a Unix socket's may be at most "
                              f"{MAX_PATH_BYTES}", "choose a shorter --socket path, e.g. /run/edge-meta/events.sock")
        private_dir(self.path.parent)
        self._remove_stale()
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket file is created 0600, with no window of wider access
        try:
            self.server.bind(str(self.path))
        except OSError as exc:
            self.server.close()
            raise ConfigError(f"{self.path}: cannot create the event socket ({exc.strerror or exc})",
                              "choose another --socket path") from None
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self.inode = self.path.stat().st_ino
        self.server.listen(8)
        self.server.settimeout(0.25)
        self.clients: list[socket.socket] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, name="edge-meta-socket", daemon=True)
        self.thread.start()

    def _remove_stale(self) -> None:
        if not self.path.exists() and not self.path.is_symlink():
            return
        if not stat.S_ISSOCK(self.path.lstat().st_mode):
            raise ConfigError(f"{self.path}: exists and is not a socket", "choose another --socket path")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(self.path))
        except OSError:
            self.path.unlink()  # left by a daemon that was killed
            return
        finally:
            probe.close()
        raise ConfigError(f"{self.path}: another edge-meta daemon is listening on it",
                          "stop it (systemctl stop edge-meta) or choose another --socket path")

    def _accept(self) -> None:
        """Accept clients and notice the ones that leave, even while no event is sent (each held a descriptor until
        the next send failed); a failed accept (out of descriptors: EMFILE) is logged and retried, never fatal."""
        failures = 0
        while not self.stopping.is_set():
            with self.lock:
                clients = list(self.clients)
            try:
                readable, _, _ = select.select([self.server, *clients], [], [], 0.25)
            except (OSError, ValueError):  # a client closed by send() meanwhile, or the server by close()
                continue
            for client in readable:
                if client is not self.server:
                    self._read_or_drop(client)
                    continue
                try:
                    client, _ = self.server.accept()
                except (BlockingIOError, socket.timeout):
                    continue
                except OSError as exc:
                    if self.stopping.is_set():
                        return
                    failures += 1
                    if failures % 100 == 1:
                        log.error("socket_accept_failed", extra={"fields": {"error": str(exc), "count": failures,
                                                                            "clients": len(self.clients)}})
                    self.stopping.wait(0.25)
                    continue
                client.setblocking(False)
                with self.lock:
                    full = len(self.clients) >= MAX_CLIENTS
                    if not full:
                        self.clients.append(client)
                if full:
                    client.close()
                    log.warning("socket_client_refused", extra={"fields": {"clients": MAX_CLIENTS}})
                else:
                    log.info("socket_client", extra={"fields": {"clients": len(self.clients)}})

    def _read_or_drop(self, client: socket.socket) -> None:
        """Clients only listen: what one sends is discarded, and one that has left (EOF, an error) is dropped."""
        try:
            gone = client.recv(4096) == b""
        except BlockingIOError:
            return
        except OSError:
            gone = True
        if gone:
            self._drop(client)

    def _drop(self, client: socket.socket) -> None:
        with self.lock:
            if client in self.clients:
                self.clients.remove(client)
                client.close()

    def send(self, line: bytes) -> None:
        """Send one line to every client; drop clients that are gone or too slow to keep up."""
        with self.lock:
            clients = list(self.clients)
        for client in clients:
            try:
                client.sendall(line)
            except OSError:  # gone, or too slow to keep up (BlockingIOError)
                self._drop(client)

    def close(self) -> None:
        self.stopping.set()
        self.server.close()
        self.thread.join(timeout=2.0)
        with self.lock:
            for client in self.clients:
                client.close()
            self.clients.clear()
        try:
            if self.path.stat().st_ino == self.inode:
                self.path.unlink()
        except FileNotFoundError:
            pass
