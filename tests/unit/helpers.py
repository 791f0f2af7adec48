"""Test doubles and builders shared by the unit tests (no root, no host commands)."""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from shellctr.core.cmd import Cmd
from shellctr.core.errors import HostCommandError
from shellctr.core.facts import Facts
from shellctr.core.host import Host
from shellctr.core.layout import CHECKOUT, Layout
from shellctr.core.state import Image, save
from shellctr.core.store import Store
from shellctr.engine import start as start_module
from shellctr.parts.request import RunRequest

# Commands whose `action` is done in Python (os.mkdir, write_atomic, shutil.rmtree, os.rename,
# os.kill, os.rmdir, a write to a cgroup file): a RecordingHost runs them. Any other program
# (tar, unshare, ...) is skipped. (conftest points cgroupfs at a tmp dir.)
PYTHON_ACTIONS = frozenset({"mkdir", "cat", "rm", "mv", "kill", "echo"})

# Fixed ids and times, so records and commands are the same on every run.
CID = "0123456789abcdef" * 4
GROUP = f"shellctr/{CID}"  # its cgroup path below each hierarchy
IMAGE_ID = "ab" * 32
LAYER = "cd" * 32
T0 = "2024-05-01T12:00:00.123456Z"
T1 = "2024-05-01T12:00:05.000001Z"
T2 = "2024-05-01T12:01:00.500000Z"


class RecordingHost(Host):
    """A Host whose `apply` records every command, runs only Python-side file actions,
    substitutes or skips host commands, and raises at command number `fail_at` (1-based).

    `substitute` maps a program (its argv[0], or the base name of it) to a stand-in."""

    def __init__(
        self,
        *,
        trace: bool = False,
        dry_run: bool = False,
        out: Any = None,
        err: Any = None,
        fail_at: int | None = None,
        substitute: dict[str, Callable[[Cmd], Any]] | None = None,
        facts: Facts | None = None,
        lean: bool = False,
    ) -> None:
        super().__init__(trace=trace, dry_run=dry_run, out=out, err=err or io.StringIO(),
                         facts=facts, lean=lean)
        self.cmds: list[Cmd] = []
        self.fail_at = fail_at
        self.substitute = {"rmdir": fake_rmdir, **(substitute or {})}

    def apply(self, cmd: Cmd, action: Callable[[], Any],
              effect: Callable[[Facts], None] | None = None) -> Any:
        self.cmds.append(cmd)
        self.show(cmd)
        if len(self.cmds) == self.fail_at:
            raise HostCommandError(f"{cmd.argv[0]} failed: injected failure")
        if self.dry_run:
            if effect is not None:
                effect(self.facts)
            return None
        program = cmd.argv[0]
        if program not in self.substitute:  # e.g. /checkout/build/shellctr-monitor
            program = os.path.basename(program)
        if program in self.substitute:
            return self.substitute[program](cmd)
        if program in PYTHON_ACTIONS or (program == "env" and cmd.redirect is not None):
            return action()  # (`env PYTHONPATH=... python -m shellctr... > FILE`: our own)
        return None  # a host command (tar, unshare, ...): never run by unit tests

    @property
    def lines(self) -> list[str]:
        """Every recorded command as the shell line --trace would print."""
        return [cmd.shell() for cmd in self.cmds]

    def reset(self) -> None:
        self.cmds.clear()


def fake_rmdir(cmd: Cmd) -> None:
    """Stands in for `rmdir CGROUP` in a tmp dir: in cgroupfs, a cgroup's control files go
    with it (here they are plain files, e.g. a freezer.state a test wrote)."""
    path = Path(cmd.argv[-1])
    for entry in path.iterdir():
        if not entry.is_dir():
            entry.unlink()
    path.rmdir()


def fake_tar(cmd: Cmd) -> None:
    """Stands in for `tar --extract`: extracts --file into --directory with Python's tarfile
    (as the current user; owners are not kept)."""
    options = dict(arg.split("=", 1) for arg in cmd.argv if arg.startswith("--") and "=" in arg)
    excludes = {value for key, value in
                (arg.split("=", 1) for arg in cmd.argv if arg.startswith("--exclude="))}
    with tarfile.open(options["--file"]) as archive:
        members = [m for m in archive.getmembers() if m.name not in excludes]
        archive.extractall(options["--directory"], members=members, filter="tar")


def q(path: str | os.PathLike[str]) -> str:
    """A path as it appears in a shell line."""
    return shlex.quote(os.fspath(path))


def removal_lines(layout: Layout, cid: str = CID, run_dir: bool = True) -> list[str]:
    """How a container's directories go: renamed to its tombstone (gone from every
    listing at once), then its run dir (when it has one) and the tombstone removed."""
    tombstone = layout.containers_dir / f".{cid}.removing"
    return [f"mv --no-target-directory {q(layout.container_dir(cid))} {q(tombstone)}",
            *([f"rm --recursive {q(layout.container_run_dir(cid))}"] if run_dir else []),
            f"rm --recursive {q(tombstone)}"]


def quiet_host() -> Host:
    """A real Host (actions run) that prints nothing: for setting up a root."""
    return Host(out=io.StringIO(), err=io.StringIO())


def prepared_store(layout: Layout) -> Store:
    """A store whose directories and lock file exist, as after any earlier command."""
    store = Store(layout, quiet_host())
    store.prepare()
    with store.lock():
        pass
    return store


def run_request(image: str, command: list[str] | None = None, *,
                limits: dict[str, Any] | None = None, network: dict[str, Any] | None = None,
                **flags: Any) -> RunRequest:
    """A RunRequest as `run IMAGE COMMAND` with `flags` (the flags' dests), `limits` and
    `network` flags given as dicts."""
    return RunRequest(image=image, command=command or [], **(limits or {}),
                      **(network or {}), **flags)


def set_state(layout: Layout, status: str, cid: str = CID, **fields: Any) -> None:
    """Rewrite a created container's life (its settings stay)."""
    store = prepared_store(layout)
    with store.lock():
        store.write_state(cid, status=status, **fields)


def image_model(**changes: Any) -> Image:
    record: dict[str, Any] = {
        "id": IMAGE_ID,
        "repo_tags": ["busybox:latest"],
        "created": T0,
        "layers": [LAYER],
        "size": 1234,
        "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
        "comment": "",
    }
    record.update(changes)
    return Image.model_validate(record)


def install_image(layout: Layout, image: Image | None = None, *, layer_dir: bool = False) -> Image:
    """Write an image record (and optionally its layer directory) into a prepared root."""
    image = image or image_model()
    store = prepared_store(layout)
    save(store, layout.image_file(image.id), image)
    if layer_dir:
        for layer in image.layers:
            layout.layer_dir(layer).mkdir(exist_ok=True)
    return image


def snapshot(root: Path) -> dict[str, tuple[str, int, bytes]]:
    """Every path under `root`: its type, mode and (for files and links) its content."""
    result: dict[str, tuple[str, int, bytes]] = {}
    if not root.exists():
        return result
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            if path.is_symlink():
                result[rel] = ("link", st.st_mode, os.readlink(path).encode())
            elif path.is_dir():
                result[rel] = ("dir", st.st_mode, b"")
            else:
                result[rel] = ("file", st.st_mode, path.read_bytes())
    return result


# -- tars ------------------------------------------------------------------------------
Member = tuple[str, bytes, str]  # (name, type, data-or-linkname)


def tar_bytes(members: Iterable[tuple[str, bytes] | tuple[str, bytes, bytes | str]],
              owner: tuple[int, int] = (0, 0)) -> bytes:
    """An uncompressed GNU tar, built in memory with fixed owners (uid, gid) and times.

    Each member is (name, tarfile type) or (name, type, data for files / link target).
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for entry in members:
            name, kind = entry[0], entry[1]
            extra = entry[2] if len(entry) > 2 else b""  # type: ignore[misc]
            info = tarfile.TarInfo(name)
            info.type, info.mtime, (info.uid, info.gid) = kind, 1700000000, owner
            info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            data = b""
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = str(extra)
            elif kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
                info.devmajor, info.devminor = 1, 3
            elif isinstance(extra, bytes):
                data = extra
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data else None)
    return buffer.getvalue()


ROOTFS: list[Any] = [
    ("bin", tarfile.DIRTYPE),
    ("bin/sh", tarfile.REGTYPE, b"#!fake shell\n"),
    ("bin/ls", tarfile.SYMTYPE, "sh"),
    ("etc", tarfile.DIRTYPE),
    ("etc/passwd", tarfile.REGTYPE, b"root:x:0:0:root:/root:/bin/sh\n"),
]


def write_tar(path: Path, members: Iterable[Any] = ROOTFS) -> Path:
    path.write_bytes(tar_bytes(members))
    return path


def record_of(cmd: Cmd) -> dict[str, Any]:
    """The JSON record a `cat > file <<EOF` command writes."""
    assert cmd.argv == ["cat"] and cmd.stdin is not None, cmd
    value: dict[str, Any] = json.loads(cmd.stdin)
    return value


def reap_in_background(process: subprocess.Popen[bytes]) -> None:
    """Wait for `process` in a thread, so that once killed it does not linger as a zombie."""
    import threading

    threading.Thread(target=process.wait, daemon=True).start()


# -- a stand-in for `shellctr-monitor ... -- unshare ... init.py` ------------------------
MONITOR_NAME = "shellctr-monitor"
MONITOR = CHECKOUT / "build" / MONITOR_NAME  # where `make` builds it
REAL_MONITOR_BINARY = start_module.monitor_binary  # conftest replaces it for every test

FAKE_INIT = """
import json, os, socket, sys
fd, code, exit_file, finished = int(sys.argv[1]), int(sys.argv[2]), sys.argv[4], sys.argv[5]
sock = socket.socket(fileno=fd)
for message in json.loads(sys.argv[3]):
    sock.sendmsg([json.dumps(message).encode()])
sock.close()
if exit_file:  # in place of the monitor: record the end as it does
    with open(exit_file + ".tmp", "w") as stream:
        stream.write(json.dumps({"exit_code": code, "finished_at": finished}) + "\\n")
    os.rename(exit_file + ".tmp", exit_file)
sys.exit(code)
"""


class FakeInit:
    """Substitutes the monitor command (or a bare `unshare` one): a process that reads
    the init spec, sends `messages` over its status fd as init.py would, and exits with
    `code`. In place of the monitor it also writes the exit file as the monitor does
    (`finished_at` = `finished`), but runs no `--then` hook: that is kept in `hook`."""

    def __init__(self, code: int = 0, messages: list[dict[str, Any]] | None = None,
                 finished: str = T2) -> None:
        self.code = code
        self.messages = [{"ready": True}] if messages is None else messages
        self.finished = finished
        self.process: subprocess.Popen[bytes] | None = None
        self.argv: list[str] = []
        self.attach: bool | None = None  # None: run as a bare unshare command
        self.hook: list[str] = []
        self.exit_file = ""
        self.log_file = ""

    def __call__(self, cmd: Cmd) -> subprocess.Popen[bytes]:
        import sys

        self.argv = argv = list(cmd.argv)
        if os.path.basename(argv[0]) == MONITOR_NAME:
            i, self.attach = 1, False
            takes = {"--keep-stdin": 0, "--no-log": 0, "--console-fd": 1, "--attach-socket": 1,
                     "--log-rotate": 2}
            while argv[i] in (*takes, "--attach", "--then", "--health"):
                if argv[i] == "--attach":
                    self.attach, i = True, i + 1
                elif argv[i] == "--then":
                    words = int(argv[i + 1])
                    self.hook, i = argv[i + 2:i + 2 + words], i + 2 + words
                elif argv[i] == "--health":
                    i += 3 + int(argv[i + 2])
                else:
                    i += 1 + takes[argv[i]]
            assert self.attach or self.hook, argv  # detached: the hook records the end
            self.exit_file, self.log_file = argv[i], argv[i + 1]
            assert argv[i + 2:i + 4] == ["--", "unshare"], argv
        else:
            assert argv[0] == "unshare", argv
        spec = json.loads(Path(argv[-1]).read_text())
        fd = spec["status_fd"]
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", FAKE_INIT, str(fd), str(self.code),
             json.dumps(self.messages), self.exit_file, self.finished],
            pass_fds=(fd,), stdin=subprocess.DEVNULL)
        return self.process


class Mounted(Facts):
    """The host's facts with the mount table `text`."""

    def __init__(self, text: str = "") -> None:
        super().__init__()
        self.text = text

    def mountinfo(self) -> str:
        return self.text
