"""Every read of the host that decides what shellctr does, behind one interface.

What exists on the host (files and directories, network links, mounts, routes, sysctls,
bound ports, processes, cgroupfs) is read here and nowhere else, so that:
- `--dry-run` sees its own plan: the door (host.Host) tells `Facts` what each planned
  step would create or remove, and later reads answer as if it had been done (a link the
  script would add is then seen as existing, a record it would write reads back);
- unit tests replace one object (tests/unit/helpers.py's FakeFacts) instead of patching
  modules.

The engine still reads the *content* it processes (layer tars, archives, a container's
files for cp, commit and diff) directly: those reads decide nothing about the host.
Standard library only: `run` reads through here on every start.
"""

from __future__ import annotations

import os
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ipaddress

# Where the host keeps what is read here (unit tests point a Facts at a tmp dir instead)
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC = Path("/proc")
NETNS_DIR = Path("/run/netns")  # ip netns' named network namespaces


class Facts:
    """The host as shellctr reads it; under --dry-run, with the planned changes applied."""

    def __init__(self) -> None:
        self.cgroup_root = CGROUP_ROOT
        self.proc = PROC
        self.netns_dir = NETNS_DIR
        # --dry-run's plan: path -> bytes it would hold (b"" for a directory), or None for
        # a path it would remove; link name -> whether it would exist
        self._paths: dict[Path, bytes | None] = {}
        self._dirs: set[Path] = set()
        self._links: dict[str, bool] = {}

    # -- the plan (called by the door under --dry-run) ------------------------------
    def plan_write(self, path: Path, data: bytes) -> None:
        self._paths[path] = data

    def plan_dir(self, path: Path) -> None:
        self._paths[path] = b""
        self._dirs.add(path)

    def plan_remove(self, path: Path) -> None:
        """`path` and everything below it would be gone."""
        for planned in [p for p in self._paths if p == path or path in p.parents]:
            del self._paths[planned]
            self._dirs.discard(planned)
        self._paths[path] = None

    def plan_link(self, name: str, present: bool) -> None:
        self._links[name] = present

    def _planned(self, path: Path) -> tuple[bool, bytes | None]:
        """The plan's word on `path`: (False, None) if it has none, (True, None) if the plan
        removes it (or a directory above it), (True, bytes) if the plan writes it."""
        if not self._paths:
            return False, None
        for candidate in (path, *path.parents):
            if candidate in self._paths:
                data = self._paths[candidate]
                if data is None:
                    return True, None
                return (True, data) if candidate == path else (False, None)
        return False, None

    # -- paths ------------------------------------------------------------------------
    def exists(self, path: Path) -> bool:
        """Whether `path` exists (a dangling symlink counts: it is there to replace)."""
        planned, data = self._planned(path)
        return data is not None if planned else os.path.lexists(path)

    def is_dir(self, path: Path) -> bool:
        planned, data = self._planned(path)
        return path in self._dirs if planned and data is not None else (
            not planned and path.is_dir())

    def is_file(self, path: Path) -> bool:
        planned, data = self._planned(path)
        return path not in self._dirs if planned and data is not None else (
            not planned and path.is_file())

    def read_bytes(self, path: Path) -> bytes:
        """A file's bytes; FileNotFoundError if it does not exist (or would be removed)."""
        planned, data = self._planned(path)
        if planned and data is None:
            raise FileNotFoundError(2, "No such file or directory (the plan removes it)",
                                    os.fspath(path))
        if data is not None and path not in self._dirs:
            return data
        with open(path, "rb") as stream:
            return stream.read()

    def read_text(self, path: Path | str, default: str | None = None) -> str:
        """A file's text; `default` (if given) when it cannot be read."""
        try:
            return self.read_bytes(Path(path)).decode()
        except OSError:
            if default is None:
                raise
            return default

    def listdir(self, path: Path) -> list[str]:
        """The names in a directory, sorted; [] if it does not exist."""
        names: set[str] = set()
        planned, data = self._planned(path)
        if not planned or data is not None:
            try:
                names.update(os.listdir(path))
            except (FileNotFoundError, NotADirectoryError):
                pass
        for entry, content in self._paths.items():
            if entry.parent == path:
                (names.discard if content is None else names.add)(entry.name)
        return sorted(names)

    # -- network -------------------------------------------------------------------------
    def links(self) -> set[str]:
        """Interface names in this network namespace (/proc/thread-self/net/dev: the
        calling thread's namespace, which tests enter per worker)."""
        with open("/proc/thread-self/net/dev", encoding="ascii") as stream:
            names = {line.split(":", 1)[0].strip() for line in stream.read().splitlines()[2:]}
        for name, present in self._links.items():
            (names.add if present else names.discard)(name)
        return names

    def routes(self) -> list[ipaddress.IPv4Network]:
        """The IPv4 networks routed in this network namespace, except the default route
        (/proc/thread-self/net/route): a new subnet must not shadow one of them."""
        import ipaddress

        routes = []
        for line in self.read_text("/proc/thread-self/net/route", "").splitlines()[1:]:
            fields = line.split()
            if len(fields) < 8:
                continue
            # little-endian hex, as the kernel prints them
            dest = ipaddress.IPv4Address(int.from_bytes(bytes.fromhex(fields[1]), "little"))
            mask = ipaddress.IPv4Address(int.from_bytes(bytes.fromhex(fields[7]), "little"))
            if int(mask):
                routes.append(ipaddress.IPv4Network(f"{dest}/{mask}", strict=False))
        return routes

    def sysctl(self, name: str, default: str = "") -> str:
        """A kernel setting (`net.ipv4.ip_forward`) as /proc/sys holds it, stripped."""
        return self.read_text(self.proc / "sys" / name.replace(".", "/"), default).strip()

    def port_taken(self, proto: str, host_ip: str, port: int) -> OSError | None:
        """Why the host cannot bind `host_ip:port` (None: it can), tried with a socket."""
        import socket

        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host_ip or "0.0.0.0", port))
            except OSError as err:
                return err
        return None

    def free_port(self, proto: str, host_ip: str) -> int:
        """A port the kernel would pick for `host_ip` now (bind to port 0)."""
        import socket

        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.bind((host_ip or "0.0.0.0", 0))
            return int(probe.getsockname()[1])

    # -- mounts ----------------------------------------------------------------------------
    def mountinfo(self) -> str:
        """This process's mount table (/proc/self/mountinfo)."""
        return self.read_text(self.proc / "self/mountinfo", "")

    # -- processes ---------------------------------------------------------------------------
    def process_start(self, pid: int) -> int | None:
        return process_start(pid)

    def alive(self, pid: int, start: int) -> bool:
        return alive(pid, start)

    def namespace_members(self, pid: int) -> list[int]:
        """Host pids of every process in the pid namespace whose init is `pid`."""
        try:
            target = os.readlink(f"/proc/{pid}/ns/pid")
        except FileNotFoundError:
            return []
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.readlink(f"/proc/{entry}/ns/pid") == target:
                        pids.append(int(entry))
                except OSError:  # gone meanwhile, or a kernel thread
                    continue
        return sorted(pids)


def process_start(pid: int) -> int | None:
    """When `pid` started (clock ticks after boot), or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            fields = stream.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return int(fields[19])  # field 22 of stat(5); fields[0] here is field 3


def alive(pid: int, start: int) -> bool:
    """The process `pid` still runs and is the one that started at `start`."""
    return pid > 0 and process_start(pid) == start
