"""The state store on disk: JSON records under --root, written atomically, one lock.

The one way to read and write state. Records are plain dicts (typed for mypy by
core/records.py); their shape is defined by the pydantic models in state.py, which the
unit tests hold every record to. This module is stdlib-only on purpose: every command
goes through it, and pydantic costs ~80 ms to import on these machines.

A container is two records: config.json, frozen at create, and state.json, its life and
the settings that may change later (name, limits, restart policy, networks: SETTINGS).
Records of schema version 1 kept those settings in config.json; they are migrated when
read (the newer state.json wins), and written back as version 2 with the next state.
"""

from __future__ import annotations

import fcntl
import os
from posixpath import basename, join

from shellctr.core.errors import CorruptRecord, Gone, ShellctrError
from shellctr.core.host import Host
from shellctr.core.layout import Layout
from shellctr.inside.jsonlite import loads

# typing is not imported at run time: every `run` pays for each module it loads
TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import datetime, tzinfo
    from pathlib import Path
    from types import TracebackType
    from typing import Any

    from shellctr.core.records import ConfigRecord, ContainerRecord, StateRecord

SCHEMA_VERSION = 1  # of images, networks and volumes
CONTAINER_SCHEMA = 2  # of config.json and state.json
Record = dict[str, "Any"]
# a container's settings, in state.json since schema 2, and their values when absent
# (records older than a setting: no limit, no restart, loopback only)
SETTINGS: dict[str, object] = {
    "name": "", "memory": 0, "memory_swap": 0, "memory_reservation": 0,
    "oom_kill_disable": False, "cpu_shares": 0, "cpu_period": 0, "cpu_quota": 0,
    "cpuset_cpus": "", "cpuset_mems": "", "pids_limit": 0, "restart_policy": "no",
    "restart_max": 0, "network_mode": "none", "networks": {},
}
# config.json fields added within schema 2, with the value an older record means
CONFIG_ADDED: dict[str, object] = {
    "cap_add": [], "cap_drop": [], "privileged": False, "security_opt": [],
    "seccomp_profile": "", "no_new_privileges": True, "devices": [],
    "device_cgroup_rules": [],
    "stop_timeout": None, "init": False, "ulimits": [], "shm_size": 0, "sysctls": {},
    "group_add": [], "ipc_mode": "private", "pid_mode": "", "uts_mode": "",
    "log_driver": "json-file", "log_opts": {}, "healthcheck": None,
}

# what a record must hold to be read at all (the rest the models check at write time):
# a record that lacks one, or is not a JSON object, is corrupt (CorruptRecord)
Shape = dict[str, type]
CONFIG_SHAPE: Shape = {"id": str, "created": str, "image": str, "image_id": str,
                       "layers": list, "path": str, "args": list, "mounts": list,
                       "labels": dict}
STATE_SHAPE: Shape = {"status": str, "pid": int}
IMAGE_SHAPE: Shape = {"id": str, "repo_tags": list, "layers": list, "config": dict}
NETWORK_SHAPE: Shape = {"id": str, "name": str, "subnet": str}
VOLUME_SHAPE: Shape = {"name": str}


def clock() -> tuple[type[datetime], tzinfo]:
    """datetime.datetime and UTC, from the C module that `datetime` re-exports: its
    Python half costs a read verb ~1.5 ms (and the verbs that show no time skip both)."""
    if TYPE_CHECKING:
        from datetime import datetime, timezone
    else:
        from _datetime import datetime, timezone
    return datetime, timezone.utc


def now_iso() -> str:
    """The current time as state files store it (ISO 8601, UTC, microseconds:
    datetime's isoformat, without importing datetime, ~2 ms of each run and start)."""
    import time

    nanos = time.time_ns()
    seconds, micros = divmod(nanos // 1000, 1_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{micros:06d}Z" if micros else f"{stamp}Z"


def dump_record(record: Record) -> str:
    import json  # here: json's Python half imports `re`, which the read verbs skip

    return json.dumps(record, separators=(",", ":")) + "\n"


class Lock:
    """Store.lock()'s context: the flock on the lock file, re-entrant in this process."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.fd: int | None = None

    def __enter__(self) -> None:
        store = self.store
        if store._lock_depth:
            store._lock_depth += 1
            return
        if store.host.dry_run and not store.exists(store.layout.lock_file_at):
            return  # nothing will be written, not even the lock file
        store.check_root()
        if not os.path.isdir(store.layout.root_at):
            store.host.ensure_dir(store.layout.root, mode=0o700)
        fd = os.open(store.layout.lock_file_at, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        store._lock_depth = 1

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self.fd is None:
            if self.store._lock_depth:
                self.store._lock_depth -= 1
            return
        self.store._lock_depth = 0
        os.close(self.fd)  # closing the file releases the flock
        self.fd = None


class Store:
    """Reads and writes the JSON records under the root."""

    def __init__(self, layout: Layout, host: Host) -> None:
        self.layout = layout
        self.host = host
        self._lock_depth = 0

    def prepare(self) -> None:
        """Create the store's directories on first use."""
        layout = self.layout
        self.check_root()
        for path in (layout.root, layout.images_dir, layout.layers_dir,
                     layout.blobs_dir.parent, layout.blobs_dir, layout.containers_dir,
                     layout.tmp_dir):
            self.host.ensure_dir(path, mode=0o700)  # no other user reads the store

    def check_root(self) -> None:
        """Refuse a root another user could swap or write into (a symlink, a directory
        writable by all): the store holds every container's files."""
        import stat

        root = self.layout.root_at
        try:
            mode = os.lstat(root).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISLNK(mode):
            raise ShellctrError(f"the root {root} is a symlink",
                                "give --root the directory it points to")
        if mode & stat.S_IWOTH:
            raise ShellctrError(f"the root {root} is writable by every user",
                                f"chmod o-w {root}, or use another --root")

    def lock(self) -> Lock:
        """The one lock around allocations of names and ids and read-modify-writes.

        Re-entrant within a process: a second flock on a new descriptor of the same
        file would wait for the first forever.
        """
        return Lock(self)

    # -- the one way to read and write records -----------------------------------
    # Reads go through the door's facts: under --dry-run, a record the plan has written
    # reads back as written, and one it has removed is gone.
    def read(self, path: Path | str, shape: Shape | None = None) -> Record:
        """A record; FileNotFoundError if there is none, CorruptRecord if it is not a
        JSON object (holding the keys of `shape`, of their types)."""
        data = self.host.facts.read_bytes(path)
        try:
            record = loads(data.decode())
        except (ValueError, RecursionError) as err:  # not JSON, UnicodeDecodeError
            raise CorruptRecord(path, "not valid JSON" if data.strip() else "empty") from err
        if not isinstance(record, dict):
            raise CorruptRecord(path, f"a JSON {type(record).__name__}, not an object")
        for key, kind in (shape or {}).items():
            if not isinstance(record.get(key), kind):
                raise CorruptRecord(path, f"no {kind.__name__} {key!r}")
        return record

    def exists(self, path: Path | str) -> bool:
        return self.host.facts.exists(path)

    def entries(self, directory: Path | str) -> list[str]:
        """The names in one of the store's directories, sorted (no dot files: temp files)."""
        return [name for name in self.host.facts.listdir(directory) if not name.startswith(".")]

    def write(self, path: Path, record: Record, durable: bool = True) -> None:
        self.host.write_file(path, dump_record(record), durable=durable)

    # -- images ----------------------------------------------------------------
    def image_records(self, corrupt: list[CorruptRecord] | None = None) -> list[Record]:
        """Every readable image record; the corrupt ones are left out (and added to
        `corrupt`, for the listings that show them)."""
        directory = self.layout.images_dir_at
        found = []
        for entry in self.entries(directory):
            if entry.endswith(".json"):
                try:
                    record = self.read(join(directory, entry), IMAGE_SHAPE)
                    if f"{record['id']}.json" != entry:
                        raise CorruptRecord(join(directory, entry), "its id is not its name")
                    found.append(record)
                except FileNotFoundError:  # removed just now
                    continue
                except CorruptRecord as err:
                    if corrupt is not None:
                        corrupt.append(err)
        return found

    def intermediate_image_ids(self) -> set[str]:
        """The images a build step was made on (the parents the build cache names):
        `images` hides them unless -a, as Docker hides its builds' intermediate images."""
        cache = self.layout.build_cache_dir_at
        parents: set[str] = set()
        for name in self.entries(cache):
            try:
                parents.add(str(loads(self.host.facts.read_bytes(join(cache, name)).decode())
                                .get("parent", "")))
            except (OSError, ValueError, AttributeError):  # removed meanwhile, or not ours
                continue
        return parents

    # -- volumes ---------------------------------------------------------------
    def volume_names(self) -> list[str]:
        """The names of the volumes with a record."""
        layout = self.layout
        return [entry for entry in self.entries(layout.volumes_dir_at)
                if self.host.facts.is_file(layout.volume_record_at(entry))]

    # -- containers ------------------------------------------------------------
    def container_ids(self) -> list[str]:
        layout = self.layout
        return [entry for entry in self.entries(layout.containers_dir_at)
                if self.host.facts.is_file(layout.container_config_at(entry))]

    def container_names(self) -> dict[str, str]:
        """id -> name of every container (not those removed while we list them)."""
        names = {}
        for cid in self.container_ids():
            try:
                names[cid] = self.container_state(cid)["name"]
            except FileNotFoundError:  # another shellctr process removed it just now
                continue
            except CorruptRecord:  # found by its id only, to be removed
                names[cid] = ""
        return names

    def container_configs(self) -> dict[str, ConfigRecord]:
        """id -> config.json of every container whose config can be read (the corrupt
        ones are left out: listings show them, rm -f removes them)."""
        found = {}
        for cid in self.container_ids():
            try:
                found[cid] = self.container_config(cid)
            except (FileNotFoundError, CorruptRecord):  # removed meanwhile; corrupt
                continue
        return found

    def container_config(self, cid: str) -> ConfigRecord:
        """config.json, as schema 2 (a version 1 record without its settings)."""
        record = self._container_read(cid, self.layout.container_config_at(cid), CONFIG_SHAPE)
        if record.get("schema_version", 1) < CONTAINER_SCHEMA:
            record = {key: value for key, value in record.items() if key not in SETTINGS}
            record["schema_version"] = CONTAINER_SCHEMA
        for key, value in CONFIG_ADDED.items():
            if key not in record:
                record[key] = type(value)() if isinstance(value, (list, dict)) else value
        return record  # type: ignore[return-value]

    def container_state(self, cid: str) -> StateRecord:
        """state.json, as schema 2 (a version 1 record with the settings its config.json
        held)."""
        record = self._container_read(cid, self.layout.container_state_at(cid), STATE_SHAPE)
        if record.get("schema_version", 1) < CONTAINER_SCHEMA:
            old = self._container_read(cid, self.layout.container_config_at(cid), CONFIG_SHAPE)
            record = {**{key: old.get(key, default) for key, default in SETTINGS.items()},
                      "starter_pid": 0, "starter_start": 0,
                      **record, "schema_version": CONTAINER_SCHEMA}
        missing = [key for key in SETTINGS if key not in record]
        if missing:
            raise CorruptRecord(self.layout.container_state_at(cid), f"no {missing[0]!r}")
        return record  # type: ignore[return-value]

    def _container_read(self, cid: str, path: str, shape: Shape) -> Record:
        try:
            return self.read(path, shape)
        except FileNotFoundError as err:
            if basename(path) == "state.json" and self.exists(
                    self.layout.container_config_at(cid)):
                raise CorruptRecord(path, "missing") from err  # as an old crash left it
            raise Gone(f"no such container: {cid}") from err  # removed since found

    def container(self, cid: str, state: StateRecord | None = None) -> ContainerRecord:
        """The container as it is now: its config with its current settings (those of
        `state` if given: the state.json just read)."""
        config: Record = dict(self.container_config(cid))
        if state is None:
            state = self.container_state(cid)
        config.update((key, state[key]) for key in SETTINGS)  # type: ignore[literal-required]
        return config  # type: ignore[return-value]

    def write_state(self, cid: str, **changes: object) -> StateRecord:
        """Rewrite state.json with `changes` (settings or life); the caller holds the lock."""
        record: Record = {**self.container_state(cid), **changes}
        self.write(self.layout.container_state(cid), record)
        return record  # type: ignore[return-value]

    def remove_container(self, cid: str) -> None:
        """Remove a container's directories (its mounts lived only in its own namespace):
        first renamed to its tombstone, so that at every point it is either whole or
        gone from every listing, with its name free; then deleted. A tombstone a killed
        removal left is finished by the next `rm` or `system prune`. The caller holds
        the lock."""
        self.host.rename(self.layout.container_dir(cid), self.tombstone(cid))
        self.remove_tombstone(cid)

    def creating(self, cid: str) -> Path:
        """Where a container is made, before it is renamed into place."""
        return self.layout.containers_dir / f".{cid}.creating"

    def tombstone(self, cid: str) -> Path:
        return self.layout.containers_dir / f".{cid}.removing"

    def tombstones(self) -> list[str]:
        """The ids of containers whose removal was begun and not finished."""
        return [name[1:-len(".removing")] for name in self.host.facts.listdir(
            self.layout.containers_dir_at) if name.startswith(".") and name.endswith(".removing")]

    def remove_tombstone(self, cid: str) -> None:
        self.host.remove_tree(self.layout.container_run_dir(cid))
        self.host.remove_tree(self.tombstone(cid))
