"""A container's state as a wait or a stream watches it: read again (reconciled) only when
its files say it may have changed, so that looking every few milliseconds costs two
stat calls, not a parse of its record and a probe of its processes."""

from __future__ import annotations

import os
import threading
import time

from shellctr.core.errors import NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from shellctr.core.records import StateRecord
    from shellctr.core.store import Store

RECHECK = 0.5  # seconds: read anyway, for what no file shows (a monitor killed silently)
FIRST_PAUSE, LONGEST_PAUSE = 0.01, 0.05  # seconds between looks: from fast, slowing down
Signature = tuple[tuple[int, int, int] | None, ...]


def signature(paths: tuple[str, ...]) -> Signature:
    """What the files are now: (inode, mtime, size) each, None if absent (state.json is
    replaced, never written in place: a new record is a new inode)."""
    found: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            found.append(None)
            continue
        found.append((st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(found)


class StateWatch:
    """One container's reconciled state, shared by the threads of one request."""

    def __init__(self, store: Store, cid: str) -> None:
        self.store, self.cid = store, cid
        layout = store.layout
        self.paths = (os.fspath(layout.container_state(cid)),
                      os.fspath(layout.container_exit_file(cid)))
        self.seen: Signature | None = None
        self.read_at = 0.0
        self.last: StateRecord | None = None
        self.changed = False  # whether the last look read the state again
        self.guard = threading.Lock()
        self.interval = FIRST_PAUSE

    def pause(self, busy: bool = False) -> None:
        """Wait before the next look: 10 ms after a change (or when the caller saw
        output: `busy`), up to 50 ms while nothing happens (a long run's wait costs
        little; a short one's end is seen within milliseconds)."""
        if busy or self.changed:
            self.interval = FIRST_PAUSE
        time.sleep(self.interval)
        self.interval = min(self.interval * 1.5, LONGEST_PAUSE)

    def state(self) -> StateRecord | None:
        """The state (None once the container is removed); read again when its record
        or its exit file changed since the last look, or RECHECK seconds passed."""
        from shellctr.engine.lifecycle import reconcile

        with self.guard:
            now, seen = time.monotonic(), signature(self.paths)  # before: a change during
            if self.seen == seen and now - self.read_at < RECHECK:  # the read is seen next
                self.changed = False
                return self.last
            try:
                self.last = reconcile(self.store, self.cid)
            except (FileNotFoundError, NotFound):
                self.last = None
            self.seen, self.read_at, self.changed = seen, now, True
            return self.last
