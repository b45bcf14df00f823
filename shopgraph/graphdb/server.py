"""A local ArcadeDB server run from the ``arcadedb-embedded`` package's jars and bundled JRE.

Layout of the server folder: ``data/`` (ArcadeDB's rootPath), ``server.pid``, ``server.json``
(ports, pid, start time), ``root_password`` (0600), ``server.log`` and ``server.lock``.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from shopgraph.artifacts import write_json, write_secret
from shopgraph.errors import ServerError

HOST = "127.0.0.1"
MAIN_CLASS = "com.arcadedb.server.ArcadeDBServer"
#: ArcadeDB's offline graph loader (``main(config.json, database folder, data folder)``).
IMPORTER_CLASS = "com.arcadedb.integration.importer.graph.GraphImporter"
_DB_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_HEAP = re.compile(r"^[1-9][0-9]*[kKmMgG]?$")
_PORT_BUSY = "Unable to listen"  # logged when a port is taken; the JVM then hangs, not exits
_FATAL = ('Exception in thread "main"', _PORT_BUSY)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]  # (host, port) for AF_INET
        return port


def _port_free(port: int) -> bool:
    """Whether ``port`` can be bound on 127.0.0.1 (with SO_REUSEADDR, as the JVM does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@dataclass(frozen=True)
class ServerStatus:
    """A snapshot of the server's state; pid, ports and uri are None when it is not running."""

    running: bool
    pid: int | None
    bolt_port: int | None
    http_port: int | None
    uri: str | None
    root: Path


class EmbeddedServer:
    """Starts, checks and stops the ArcadeDB server process of one workspace folder.

    Args:
        root: the server's folder, e.g. ``<workspace>/graphdb``.
        bolt_port: Bolt port on 127.0.0.1; None picks a free one (the last one if still free).
        http_port: HTTP port on 127.0.0.1; None picks one likewise.
        heap: the JVM's maximum heap (``-Xmx``), e.g. ``"512m"`` or ``"2g"``.
    """

    user: str = "root"

    def __init__(self, root: str | Path, bolt_port: int | None = None,
                 http_port: int | None = None, heap: str = "2g") -> None:
        if not _HEAP.match(heap):
            raise ValueError(f"invalid heap size {heap!r}; use e.g. '512m' or '2g'")
        self.root = Path(root).absolute()
        self.bolt_port, self.http_port, self.heap = bolt_port, http_port, heap
        self.data_dir = self.root / "data"
        self.pid_file, self.state_file = self.root / "server.pid", self.root / "server.json"
        self.password_file, self.log_file = self.root / "root_password", self.root / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def password(self) -> str:
        """The root password, generated and stored (0600) on first use."""
        if not self.password_file.exists():
            if (self.data_dir / "config" / "server-users.jsonl").exists():
                raise ServerError(f"{self.password_file} is missing but {self.data_dir} already "
                                  "has a root user; restore the file, or delete "
                                  f"{self.data_dir} to start over (its databases are lost)")
            write_secret(self.password_file, secrets.token_urlsafe(32))
        return self.password_file.read_text().strip()

    @property
    def uri(self) -> str:
        """``bolt://127.0.0.1:<bolt_port>`` of the running (or explicitly configured) server."""
        port = self.status().bolt_port or self.bolt_port
        if port is None:
            raise ServerError(f"no ArcadeDB server is running for {self.root}; start it first")
        return f"bolt://{HOST}:{port}"

    def status(self) -> ServerStatus:
        """Report whether our server runs; a stale pid file is removed."""
        if self._proc is not None:
            self._proc.poll()  # reap our own child if it died
        stopped = ServerStatus(False, None, None, None, None, self.root)
        try:
            pid = int(self.pid_file.read_text().strip())
        except FileNotFoundError:
            return stopped
        except (OSError, ValueError):
            pid = 0
        if pid <= 0 or not _alive(pid) or not self._is_ours(pid):
            self.pid_file.unlink(missing_ok=True)
            return stopped
        state = self._state()
        bolt, http = state.get("bolt_port"), state.get("http_port")
        return ServerStatus(True, pid, bolt, http, bolt and f"bolt://{HOST}:{bolt}", self.root)

    def start(self, timeout: float = 60.0) -> ServerStatus:
        """Start the server and wait until both HTTP and Bolt answer.

        Raises:
            ServerError: it already runs, a requested port is taken, or it did not come up
                within ``timeout`` seconds (the message quotes ``server.log``).
        """
        with self._lock():
            current = self.status()
            if current.running:
                raise ServerError(f"ArcadeDB is already running for {self.root} (pid "
                                  f"{current.pid}, {current.uri}); use it, or stop it first")
            return self._start(timeout)

    def ensure_running(self, timeout: float = 60.0) -> ServerStatus:
        """Start the server unless it runs; safe when several processes ask at once (the
        others wait under the lock until the first one's server answers)."""
        with self._lock():
            current = self.status()
            return current if current.running else self._start(timeout)

    def _start(self, timeout: float) -> ServerStatus:
        """Launch the server and wait until it answers (the caller holds the lock)."""
        package = _package()
        self.password()
        for _attempt in range(3):  # an automatically picked port may be taken meanwhile
            bolt, http = self._pick_ports()
            status = self._launch(package, bolt, http, timeout)
            if status is not None or (self.bolt_port and self.http_port):
                break
        if status is None:
            raise ServerError(f"ports {bolt}/{http} were taken while ArcadeDB was starting; "
                              "try again or choose other ports")
        return status

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the server (SIGTERM, SIGKILL after ``timeout``); False if it was not running."""
        with self._lock():
            current = self.status()
            if not current.running or current.pid is None:
                return False
            self._kill(current.pid, grace=timeout)
            return True

    def ensure_database(self, name: str) -> bool:
        """Create database ``name`` unless it exists; True if it was created."""
        if name in self._databases(name):
            return False
        try:
            self._command(f"create database {name}")
        except ServerError as exc:
            if "already exists" in str(exc):  # created concurrently
                return False
            raise
        return True

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` with all its data; nothing happens if it does not exist."""
        if name in self._databases(name):
            self._command(f"drop database {name}")

    def import_graph(self, name: str, config: Path, heap: str = "2g") -> str:
        """Replace database ``name`` by the graph ArcadeDB's ``GraphImporter`` builds from
        ``config`` (its JSON settings; file names in it are relative to its folder), offline:
        the server closes the database, the importer (a JVM of its own, ``-Xmx<heap>``) writes a
        new one in its folder, and the server opens it again. Whoever uses the database
        meanwhile gets errors. Returns what the importer printed.

        Raises:
            ServerError: the importer failed; the database is then empty (created anew) and
                the message quotes the importer's last lines.
        """
        self._databases(name)  # validates the name
        if not _HEAP.match(heap):
            raise ValueError(f"invalid heap size {heap!r}; use e.g. '512m' or '2g'")
        package = _package()
        folder = self.data_dir / "databases" / name
        args = [str(package / "jre" / "bin" / "java"), f"-Xmx{heap}", "-cp",
                f"{package / 'jars'}/*", IMPORTER_CLASS, str(config), str(folder),
                str(config.parent)]
        self._command(f"close database {name}")
        try:
            done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, errors="replace", cwd=config.parent, umask=0o077)
        except BaseException:
            self._empty_again(name, folder)
            raise
        if done.returncode != 0:
            self._empty_again(name, folder)
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
            raise ServerError(f"ArcadeDB's importer failed (exit code {done.returncode}); "
                              f"database {name!r} is empty again. Last lines:\n{tail}")
        self._command(f"open database {name}")
        return done.stdout + done.stderr

    def _empty_again(self, name: str, folder: Path) -> None:
        """Put an empty database ``name`` where a failed import left its folder."""
        shutil.rmtree(folder, ignore_errors=True)
        self._command(f"create database {name}")

    def _databases(self, name: str) -> list[str]:
        """Validate ``name`` and list the server's databases."""
        if not _DB_NAME.match(name):
            raise ValueError(f"invalid database name {name!r}; use a letter followed by up to 63 "
                             "letters, digits or underscores")
        return self._command("list databases") or []

    def _state(self) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads(self.state_file.read_text())
            return state
        except (OSError, ValueError):
            return {}

    def _is_ours(self, pid: int) -> bool:
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return (MAIN_CLASS.encode() in args
                and f"-Darcadedb.server.rootPath={self.data_dir}".encode() in args)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        _private_dir(self.root)
        fd = os.open(self.root / "server.lock", os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    def _pick_ports(self) -> tuple[int, int]:
        state = self._state()
        chosen: list[int] = []
        for kind, wanted in (("bolt", self.bolt_port), ("http", self.http_port)):
            if wanted is not None and not _port_free(wanted):
                raise ServerError(f"{kind} port {wanted} on {HOST} is already in use by another "
                                  f"process; free it, or choose another {kind} port")
            port = wanted or state.get(f"{kind}_port")
            if wanted is None and (not isinstance(port, int) or not _port_free(port)):
                port = free_port()
            while wanted is None and port in (*chosen, self.bolt_port, self.http_port):
                port = free_port()
            # an int: `wanted`, or checked/picked above (only a requested port 0 would fall
            # through to the unchecked saved value)
            chosen.append(cast(int, port))
        if chosen[0] == chosen[1]:
            raise ServerError(f"the Bolt and HTTP ports must differ (both are {chosen[0]})")
        return chosen[0], chosen[1]

    def _launch(self, package: Path, bolt: int, http: int, timeout: float) -> ServerStatus | None:
        """Run the JVM and wait until it serves; None if it lost a port to another process."""
        args = [str(package / "jre" / "bin" / "java"), f"-Xmx{self.heap}",
                f"-Darcadedb.server.rootPath={self.data_dir}",
                f"-Darcadedb.server.rootPasswordPath={self.password_file}",  # not on the cmdline
                "-Darcadedb.server.plugins=Bolt:com.arcadedb.bolt.BoltProtocolPlugin",
                f"-Darcadedb.bolt.port={bolt}", f"-Darcadedb.bolt.host={HOST}",
                f"-Darcadedb.server.httpIncomingHost={HOST}",
                f"-Darcadedb.server.httpIncomingPort={http}",
                "-cp", f"{package / 'jars'}/*", MAIN_CLASS]
        _private_dir(self.data_dir)
        _private_files(self.root)
        fd = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as log:
            offset = log.tell()
            # umask 077: the graph's files are the owner's alone (0600 files, 0700 folders)
            self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                          cwd=self.root, start_new_session=True, umask=0o077)
        pid = self._proc.pid
        write_secret(self.pid_file, f"{pid}\n")
        write_json(self.state_file, {"pid": pid, "bolt_port": bolt, "http_port": http,
                                     "heap": self.heap, "started_at": time.time()})
        deadline, problem = time.monotonic() + timeout, None
        while problem is None:
            time.sleep(0.25)
            log_text = self._log_tail(offset, lines=None)
            if self._proc.poll() is not None:
                problem = f"the server process exited with code {self._proc.returncode}"
            elif any(marker in log_text for marker in _FATAL):
                problem = "the server reported a fatal error"
            elif time.monotonic() > deadline:
                problem = f"the server did not answer within {timeout:.0f} s"
            else:
                try:
                    if self._ready(http, bolt):
                        return self.status()
                except ServerError as exc:
                    problem = str(exc)
        self._kill(pid, grace=5.0)
        if _PORT_BUSY in log_text:
            return None
        raise ServerError(f"ArcadeDB did not start: {problem}. Last lines of {self.log_file}:\n"
                          f"{self._log_tail(offset)}")

    def _ready(self, http: int, bolt: int) -> bool:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{http}/api/v1/ready", timeout=2):
                pass  # 204 once ready; 503 (an HTTPError) while starting
            socket.create_connection((HOST, bolt), timeout=2).close()
        except OSError:
            return False
        try:  # proves the answering server is ours: it accepts our root password
            return isinstance(self._command("list databases", http_port=http), list)
        except ServerError as exc:
            if "HTTP 403" in str(exc):
                raise ServerError(f"{self.data_dir} does not accept the password in "
                                  f"{self.password_file}; restore that file's original content "
                                  f"or delete {self.data_dir} (its databases are lost)") from None
            raise

    def _kill(self, pid: int, grace: float) -> None:
        """SIGTERM ``pid``, SIGKILL it after ``grace`` seconds, and remove the pid file."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                if _alive(pid):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
                if self._proc is not None and self._proc.pid == pid:
                    self._proc.poll()  # reap our own child so it does not linger as a zombie
        self.pid_file.unlink(missing_ok=True)

    def _command(self, command: str, http_port: int | None = None) -> Any:
        """Run an ArcadeDB server command over HTTP and return its ``result``."""
        return self._post("server", {"command": command}, repr(command.split()[0]), http_port)

    def type_count(self, database: str, type_name: str) -> int:
        """The number of records of the type ``type_name`` (a label or relationship type) in
        ``database``, from ArcadeDB's SQL ``count(*)``, which reads the type's own count: 0.5 s
        for 21M edges, where Cypher's ``count(r)`` walks the graph (7.5 s on any type).

        Raises:
            ValueError: ``type_name`` is not a plain identifier.
            ServerError: the server is not running, refused, or answered something else.
        """
        if not re.fullmatch(r"[A-Za-z_]\w*", type_name):
            raise ValueError(f"{type_name!r} is not a type name")
        result = self._post(f"query/{urllib.parse.quote(database)}",
                            {"language": "sql",
                             "command": f"SELECT count(*) AS n FROM `{type_name}`"},
                            "a count")
        try:
            return int(result[0]["n"])
        except (LookupError, TypeError, ValueError) as exc:
            raise ServerError(f"ArcadeDB answered a count with {result!r}") from exc

    def _post(self, path: str, body: dict[str, str], what: str,
              http_port: int | None = None) -> Any:
        """POST ``body`` to ``/api/v1/<path>`` as root and return the answer's ``result``;
        ``what`` names the request in errors."""
        port = http_port or self.status().http_port
        if port is None:
            raise ServerError(f"no ArcadeDB server is running for {self.root}; start it first")
        token = base64.b64encode(f"{self.user}:{self.password()}".encode()).decode()
        request = urllib.request.Request(
            f"http://{HOST}:{port}/api/v1/{path}", data=json.dumps(body).encode(),
            headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read() or b"{}").get("result")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            with contextlib.suppress(ValueError, AttributeError):
                detail = json.loads(detail).get("detail") or detail
            raise ServerError(f"ArcadeDB refused {what} (HTTP {exc.code}): {detail}") from None
        except OSError as exc:
            raise ServerError(f"cannot reach ArcadeDB on {HOST}:{port}: {exc}") from None

    def _log_tail(self, offset: int, lines: int | None = 20) -> str:
        """The server log written since byte ``offset``, its last ``lines`` lines if given."""
        with contextlib.suppress(OSError):
            text = self.log_file.read_bytes()[offset:].decode(errors="replace")
            return "\n".join(text.splitlines()[-lines:]) if lines else text
        return "(no log)"


def _package() -> Path:
    """The folder of the ``arcadedb-embedded`` package (its jars and bundled Java runtime)."""
    spec = importlib.util.find_spec("arcadedb_embedded")  # not imported: it starts a JVM
    locations = list(spec.submodule_search_locations or []) if spec else []
    package = Path(locations[0] if locations else "/nonexistent")
    if not os.access(package / "jre" / "bin" / "java", os.X_OK):
        raise ServerError("the arcadedb-embedded package or its bundled Java runtime is "
                          "missing; run `pip install --force-reinstall arcadedb-embedded`")
    return package


def _private_dir(path: Path) -> None:
    """Create ``path`` (and parents) if missing, and make it the owner's alone (0700)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)


def _private_files(root: Path) -> None:
    """Tighten what an older shopgraph left readable under ``root``: folders 0700, files 0600."""
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o700)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, 0o600)
