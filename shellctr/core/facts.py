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

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ipaddress
    from pathlib import Path

# Where the host keeps what is read here (unit tests point a Facts at a tmp dir instead)
CGROUP_ROOT = "/sys/fs/cgroup"
PROC = "/proc"
NETNS_DIR = "/run/netns"  # ip netns' named network namespaces
ETC = "/etc"


class Facts:
    """The host as shellctr reads it; under --dry-run, with the planned changes applied."""

    def __init__(self) -> None:
        # as strings (the `_at` names) for the read verbs, which import no pathlib
        self.cgroup_root_at, self.proc_at, self.netns_dir_at, self.etc_at = (
            CGROUP_ROOT, PROC, NETNS_DIR, ETC)
        self.lean = False  # the door's choice of executor, for the commands read here
        # --dry-run's plan: path -> bytes it would hold (b"" for a directory), or None for
        # a path it would remove; link name -> whether it would exist
        self._paths: dict[Path, bytes | None] = {}
        self._dirs: set[Path] = set()
        self._links: dict[str, bool] = {}
        self._rules: dict[str, list[list[str]]] = {}  # table -> rules the plan adds
        self._rules_gone: dict[str, list[list[str]]] = {}  # ... and those it deletes
        self._gone: set[int] = set()  # pids the plan ends (SIGTERM, SIGKILL)
        self._stand_ins: dict[Path, Path] = {}  # planned scratch file -> where it really is

    @property
    def cgroup_root(self) -> Path:
        return _path(self.cgroup_root_at)

    @cgroup_root.setter
    def cgroup_root(self, path: str | os.PathLike[str]) -> None:
        self.cgroup_root_at = os.fspath(path)

    @property
    def proc(self) -> Path:
        return _path(self.proc_at)

    @proc.setter
    def proc(self, path: str | os.PathLike[str]) -> None:
        self.proc_at = os.fspath(path)

    @property
    def netns_dir(self) -> Path:
        return _path(self.netns_dir_at)

    @netns_dir.setter
    def netns_dir(self, path: str | os.PathLike[str]) -> None:
        self.netns_dir_at = os.fspath(path)

    @property
    def etc(self) -> Path:
        return _path(self.etc_at)

    @etc.setter
    def etc(self, path: str | os.PathLike[str]) -> None:
        self.etc_at = os.fspath(path)

    # -- the plan (called by the door under --dry-run) ------------------------------
    def plan_write(self, path: Path, data: bytes) -> None:
        self._paths[path] = data

    def plan_stand_in(self, path: Path, real: Path | None) -> None:
        """The scratch file `path` of the plan is really at `real` (a memfd's
        /proc/self/fd/N): the verb reads it there, the script names `path`. None: gone."""
        if real is None:
            self._stand_ins.pop(path, None)
        else:
            self._stand_ins[path] = real

    def readable(self, path: Path) -> Path:
        """Where to open `path` for reading: itself, or the stand-in of a planned one."""
        return self._stand_ins.get(path, path)

    def plan_dir(self, path: Path) -> None:
        self._paths[path] = b""
        self._dirs.add(path)

    def plan_remove(self, path: Path) -> None:
        """`path` and everything below it would be gone."""
        for planned in [p for p in self._paths if p == path or path in p.parents]:
            del self._paths[planned]
            self._dirs.discard(planned)
        self._paths[path] = None

    def plan_move(self, src: Path, dst: Path) -> None:
        """`src` would be renamed `dst`: what the plan wrote below it moves along."""
        below = {planned: data for planned, data in self._paths.items()
                 if planned == src or src in planned.parents}
        directory = self.is_dir(src)
        dirs = {dst / path.relative_to(src) for path in below if path in self._dirs}
        self.plan_remove(src)
        for path, data in below.items():
            self._paths[dst / path.relative_to(src)] = data
        self._dirs |= dirs
        if dst not in self._paths:
            (self.plan_dir(dst) if directory else self.plan_write(dst, b""))

    def plan_link(self, name: str, present: bool) -> None:
        self._links[name] = present

    def plan_rules(self, table: str, added: list[list[str]], deleted: list[list[str]]) -> None:
        """iptables rules (`-A CHAIN ...`, `-N CHAIN`, in the long form or iptables' own)
        the plan adds to and deletes from `table`."""
        mine = self._rules.setdefault(table, [])
        for words in deleted:
            key = long_form(words)
            kept = [rule for rule in mine if long_form(rule) != key]
            if len(kept) == len(mine):  # not one of the plan's own: the host's
                self._rules_gone.setdefault(table, []).append(key)
            mine[:] = kept
        mine.extend(added)

    def plan_end(self, pid: int) -> None:
        self._gone.add(pid)

    def _planned(self, path: Path | str) -> tuple[bool, bytes | None]:
        """The plan's word on `path`: (False, None) if it has none, (True, None) if the plan
        removes it (or a directory above it), (True, bytes) if the plan writes it."""
        if not self._paths:
            return False, None
        path = _path(path)
        for candidate in (path, *path.parents):
            if candidate in self._paths:
                data = self._paths[candidate]
                if data is None:
                    return True, None
                return (True, data) if candidate == path else (False, None)
        return False, None

    # -- paths ------------------------------------------------------------------------
    def exists(self, path: Path | str) -> bool:
        """Whether `path` exists (a dangling symlink counts: it is there to replace)."""
        planned, data = self._planned(path)
        return data is not None if planned else os.path.lexists(path)

    def is_dir(self, path: Path | str) -> bool:
        planned, data = self._planned(path)
        return _path(path) in self._dirs if planned and data is not None else (
            not planned and os.path.isdir(path))

    def is_file(self, path: Path | str) -> bool:
        planned, data = self._planned(path)
        return _path(path) not in self._dirs if planned and data is not None else (
            not planned and os.path.isfile(path))

    def read_bytes(self, path: Path | str) -> bytes:
        """A file's bytes; FileNotFoundError if it does not exist (or would be removed)."""
        planned, data = self._planned(path)
        if planned and data is None:
            raise FileNotFoundError(2, "No such file or directory (the plan removes it)",
                                    os.fspath(path))
        if data is not None and _path(path) not in self._dirs:
            return data
        with open(path, "rb") as stream:
            return stream.read()

    def read_text(self, path: Path | str, default: str | None = None) -> str:
        """A file's text; `default` (if given) when it cannot be read."""
        try:
            return self.read_bytes(path).decode()
        except OSError:
            if default is None:
                raise
            return default

    def tree_size(self, path: Path) -> int:
        """The bytes of the files under `path` (symlinks not followed; 0 if absent), as
        `du --apparent-size` counts them: what `ps --size` and `system df` show."""
        total = 0
        for directory, dirs, files in os.walk(path):
            for name in [*dirs, *files]:
                try:
                    total += os.lstat(os.path.join(directory, name)).st_size \
                        if name in files else 0
                except OSError:  # gone while we walked
                    continue
        return total

    def listdir(self, path: Path | str) -> list[str]:
        """The names in a directory, sorted; [] if it does not exist."""
        names: set[str] = set()
        planned, data = self._planned(path)
        if not planned or data is not None:
            try:
                names.update(os.listdir(path))
            except (FileNotFoundError, NotADirectoryError):
                pass
        for entry, content in self._paths.items():
            if entry.parent == _path(path):
                (names.discard if content is None else names.add)(entry.name)
        return sorted(names)

    # -- network -------------------------------------------------------------------------
    def links(self) -> set[str]:
        """Interface names in this network namespace."""
        names = self.host_links()
        for name, present in self._links.items():
            (names.add if present else names.discard)(name)
        return names

    def host_links(self) -> set[str]:
        """The links as the kernel lists them (/proc/thread-self/net/dev: the calling
        thread's namespace, which tests enter per worker)."""
        with open("/proc/thread-self/net/dev", encoding="ascii") as stream:
            return {line.split(":", 1)[0].strip() for line in stream.read().splitlines()[2:]}

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

    def resolv_conf(self) -> str:
        """The host's /etc/resolv.conf ("" if it has none)."""
        return self.read_text(self.etc / "resolv.conf", "")

    def sysctl(self, name: str, default: str = "") -> str:
        """A kernel setting (`net.ipv4.ip_forward`) as /proc/sys holds it, stripped."""
        return self.read_text(self.proc / "sys" / name.replace(".", "/"), default).strip()

    def kernel(self) -> tuple[str, str]:
        """(machine, release) as `uname --machine --kernel-release` prints them."""
        uname = os.uname()
        return uname.machine, uname.release

    def filesystem_known(self, kind: str) -> bool:
        """Whether `mount --types KIND` can work here: the kernel has it
        (/proc/filesystems), a module would load for it (modules.alias `fs-KIND`) or
        mount(8) has a helper for it (/sbin/mount.KIND, as mount.nfs)."""
        listed = self.read_text(self.proc / "filesystems", "")
        if kind in (line.split()[-1] for line in listed.splitlines() if line.split()):
            return True
        aliases = self.read_text(f"/lib/modules/{self.kernel()[1]}/modules.alias", "")
        if f"alias fs-{kind} " in aliases:
            return True
        return any(os.path.exists(f"{folder}/mount.{kind}") for folder in ("/sbin", "/usr/sbin"))

    def security_modules(self) -> set[str]:
        """The active Linux security modules (`cat /sys/kernel/security/lsm`)."""
        text = self.read_text("/sys/kernel/security/lsm", "")
        return {word for word in text.strip().split(",") if word}

    def device(self, path: str) -> tuple[str, int, int] | None:
        """A device node's (c|b, major, minor), following links as `stat` does; None if
        `path` is not a device node."""
        import stat

        try:
            st = os.stat(path)
        except OSError:
            return None
        if stat.S_ISCHR(st.st_mode):
            return "c", os.major(st.st_rdev), os.minor(st.st_rdev)
        if stat.S_ISBLK(st.st_mode):
            return "b", os.major(st.st_rdev), os.minor(st.st_rdev)
        return None

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

    def free_port(self, proto: str, host_ip: str, taken: set[tuple[str, int]]) -> int | None:
        """A port the kernel would hand out for `host_ip` now (bind to port 0) that is
        not in `taken`; None if it keeps handing out taken ones."""
        import socket

        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        for _ in range(100):
            with socket.socket(socket.AF_INET, kind) as probe:
                probe.bind((host_ip or "0.0.0.0", 0))
                port = int(probe.getsockname()[1])
            if (proto, port) not in taken:
                return port
        return None

    def iptables_rules(self, table: str) -> list[list[str]]:
        """The table's rules and chains as words (`-N CHAIN`, `-A CHAIN ...`)."""
        rules = self.host_iptables_rules(table)
        gone = self._rules_gone.get(table, [])
        if gone:
            rules = [words for words in rules if long_form(words) not in gone]
        return rules + self._rules.get(table, [])

    def host_iptables_rules(self, table: str, netns: Path | None = None) -> list[list[str]]:
        """The table as `iptables --list-rules` prints it, split into words; with `netns`,
        that named network namespace's (none yet, as a --dry-run plans it: empty)."""
        import shlex

        from shellctr.core.errors import HostCommandError
        from shellctr.core.runner import execute

        if netns is not None and not os.path.exists(netns):
            return []
        enter = ["nsenter", f"--net={os.fspath(netns)}", "--"] if netns is not None else []
        code, out, err = execute([*enter, "iptables", "--wait", "--table", table,
                                  "--list-rules"], None, None, self.lean)
        if code != 0:
            raise HostCommandError(f"iptables --list-rules failed: {err.strip()}")
        return [shlex.split(text) for text in out.splitlines()]

    # -- mounts ----------------------------------------------------------------------------
    def mountinfo(self) -> str:
        """This process's mount table (/proc/self/mountinfo)."""
        return self.read_text(self.proc / "self/mountinfo", "")

    # -- processes ---------------------------------------------------------------------------
    def process_start(self, pid: int) -> int | None:
        return None if pid in self._gone else process_start(pid)

    def alive(self, pid: int, start: int) -> bool:
        return pid not in self._gone and alive(pid, start)

    def children(self, pid: int) -> list[int]:
        """The pids of `pid`'s children (of its main thread)."""
        text = self.read_text(self.proc / f"{pid}/task/{pid}/children", "")
        return [int(child) for child in text.split() if int(child) not in self._gone]

    def processes_mentioning(self, text: str) -> list[tuple[int, int]]:
        return [(pid, ppid) for pid, ppid in processes_mentioning(text)
                if pid not in self._gone]

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


def _path(path: Path | str) -> Path:
    """`path` as a pathlib.Path, as the plan (--dry-run) keys what it writes."""
    from pathlib import Path

    return Path(path)


# what `iptables --list-rules` prints, and the long form shellctr writes
LONG = {"-A": "--append", "-I": "--insert", "-N": "--new-chain", "-s": "--source",
        "-d": "--destination", "-i": "--in-interface", "-o": "--out-interface",
        "-p": "--protocol", "-m": "--match", "-j": "--jump", "--dport": "--destination-port"}


def long_form(words: list[str]) -> list[str]:
    """An iptables rule's words with iptables' short options spelled out."""
    return [LONG.get(word, word) for word in words]


def process_stat(pid: int) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command's name (fields[0]: its state), or
    None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            fields = stream.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return fields if len(fields) > 19 else None


def process_start(pid: int) -> int | None:
    """When `pid` started (clock ticks after boot), or None if there is no such process."""
    fields = process_stat(pid)
    return None if fields is None else int(fields[19])  # field 22 of stat(5)


def alive(pid: int, start: int) -> bool:
    """The process `pid` still runs and is the one that started at `start`: a zombie
    (ended, not yet reaped by its parent) does not run."""
    fields = process_stat(pid) if pid > 0 else None
    return fields is not None and fields[0] not in (b"Z", b"X") and int(fields[19]) == start


def processes_mentioning(text: str) -> list[tuple[int, int]]:
    """(pid, parent pid) of the live processes whose command line contains `text`."""
    found = []
    needle = os.fsencode(text)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as stream:
                    if needle not in stream.read():
                        continue
            except OSError:  # gone meanwhile
                continue
            fields = process_stat(int(entry))
            if fields is not None and fields[0] not in (b"Z", b"X"):
                found.append((int(entry), int(fields[1])))
    return found
