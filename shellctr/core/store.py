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

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from shellctr.core.host import Host
from shellctr.core.layout import Layout

# typing is not imported at run time: every `run` pays for each module it loads
TYPE_CHECKING = False
if TYPE_CHECKING:
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
# config fields added after schema 2 (issue 16), and their values in older records
CONFIG_ADDED: dict[str, object] = {
    "stop_timeout": None, "init": False, "ulimits": [], "shm_size": 0, "sysctls": {},
    "group_add": [], "ipc_mode": "private", "pid_mode": "", "uts_mode": "",
    "log_driver": "json-file", "log_opts": {}, "healthcheck": None,
}


def now_iso() -> str:
    """The current time as state files store it (ISO 8601, UTC)."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def dump_record(record: Record) -> str:
    return json.dumps(record, separators=(",", ":")) + "\n"


class Store:
    """Reads and writes the JSON records under the root."""

    def __init__(self, layout: Layout, host: Host) -> None:
        self.layout = layout
        self.host = host
        self._lock_depth = 0

    def prepare(self) -> None:
        """Create the store's directories on first use."""
        layout = self.layout
        for path in (layout.root, layout.images_dir, layout.layers_dir, layout.blobs_dir,
                     layout.containers_dir, layout.tmp_dir):
            self.host.ensure_dir(path, mode=0o700)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """The one lock around allocations of names and ids and read-modify-writes.

        Re-entrant within a process: a second flock on a new descriptor of the same
        file would wait for the first forever.
        """
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        if self.host.dry_run and not self.layout.lock_file.exists():
            yield  # nothing will be written, not even the lock file
            return
        if not self.layout.root.is_dir():
            self.host.ensure_dir(self.layout.root, mode=0o700)
        fd = os.open(self.layout.lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_depth = 1
            yield
        finally:
            self._lock_depth = 0
            os.close(fd)  # closing the file releases the flock

    # -- the one way to read and write records -----------------------------------
    # Reads go through the door's facts: under --dry-run, a record the plan has written
    # reads back as written, and one it has removed is gone.
    def read(self, path: Path) -> Record:
        """A record; FileNotFoundError if there is none."""
        record: Record = json.loads(self.host.facts.read_bytes(path))
        return record

    def exists(self, path: Path) -> bool:
        return self.host.facts.exists(path)

    def entries(self, directory: Path) -> list[str]:
        """The names in one of the store's directories, sorted (no dot files: temp files)."""
        return [name for name in self.host.facts.listdir(directory) if not name.startswith(".")]

    def write(self, path: Path, record: Record, durable: bool = True) -> None:
        self.host.write_file(path, dump_record(record), durable=durable)

    # -- images ----------------------------------------------------------------
    def image_records(self) -> list[Record]:
        directory = self.layout.images_dir
        return [self.read(directory / entry) for entry in self.entries(directory)
                if entry.endswith(".json")]

    # -- containers ------------------------------------------------------------
    def container_ids(self) -> list[str]:
        layout = self.layout
        return [entry for entry in self.entries(layout.containers_dir)
                if self.host.facts.is_file(layout.container_config(entry))]

    def container_names(self) -> dict[str, str]:
        """id -> name of every container (not those removed while we list them)."""
        names = {}
        for cid in self.container_ids():
            try:
                names[cid] = self.container_state(cid)["name"]
            except FileNotFoundError:  # another shellctr process removed it just now
                continue
        return names

    def container_config(self, cid: str) -> ConfigRecord:
        """config.json, as schema 2 (a version 1 record without its settings)."""
        record = self.read(self.layout.container_config(cid))
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
        record = self.read(self.layout.container_state(cid))
        if record.get("schema_version", 1) < CONTAINER_SCHEMA:
            old = self.read(self.layout.container_config(cid))
            record = {**{key: old.get(key, default) for key, default in SETTINGS.items()},
                      "starter_pid": 0, "starter_start": 0,
                      **record, "schema_version": CONTAINER_SCHEMA}
        return record  # type: ignore[return-value]

    def container(self, cid: str) -> ContainerRecord:
        """The container as it is now: its config with its current settings."""
        config: Record = dict(self.container_config(cid))
        state = self.container_state(cid)
        config.update((key, state[key]) for key in SETTINGS)  # type: ignore[literal-required]
        return config  # type: ignore[return-value]

    def write_state(self, cid: str, **changes: object) -> StateRecord:
        """Rewrite state.json with `changes` (settings or life); the caller holds the lock."""
        record: Record = {**self.container_state(cid), **changes}
        self.write(self.layout.container_state(cid), record)
        return record  # type: ignore[return-value]

    def remove_container(self, cid: str) -> None:
        """Remove a container's directories (its mounts lived only in its own namespace)."""
        layout = self.layout
        self.host.remove_tree(layout.container_run_dir(cid))
        self.host.remove_tree(layout.container_dir(cid))
