"""Long image work (load, commit) does not hold the store's lock: other commands on the
same root go on meanwhile, and concurrent loads of one archive store each layer once."""

from __future__ import annotations

import os
import signal
import threading
import uuid
from pathlib import Path

from .support import Ctr, Worker, wait_for
from .test_archives import busybox_layer, docker_archive, layer, member


def marked_archive(path: Path, tag: str) -> Path:
    """A runnable two-layer docker-archive of this test's own (a unique marker), its
    second layer large enough (4 MB) that half of the archive lies inside it."""
    marker = uuid.uuid4().hex
    base = layer(busybox_layer(marker))
    big = layer([member("data", data=os.urandom(4 << 20))])
    return docker_archive(path, [base, big], [tag])


class HeldFeed:
    """Writes `data` into the named pipe `fifo`: the first half, then (once released)
    the rest. A reader of the pipe has provably not seen the whole archive until then."""

    def __init__(self, fifo: Path, data: bytes) -> None:
        self.fifo, self.data = fifo, data
        self.half_written, self.release = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._feed, daemon=True)
        self.thread.start()

    def _feed(self) -> None:
        half = len(self.data) // 2
        try:
            with open(self.fifo, "wb") as pipe:  # waits for the reader to open it
                pipe.write(self.data[:half])
                pipe.flush()
                self.half_written.set()
                self.release.wait()
                pipe.write(self.data[half:])
        except BrokenPipeError:  # the reader was killed: the test has failed already
            self.half_written.set()

    def finish(self) -> None:
        self.release.set()
        self.thread.join(timeout=60)


def test_ps_images_and_run_complete_while_a_load_is_half_way_through_its_archive(
        ctr: Ctr, tmp_path: Path) -> None:
    tag = f"held-{uuid.uuid4().hex[:8]}:1"
    data = marked_archive(tmp_path / "held.tar", tag).read_bytes()
    fifo = tmp_path / "feed"
    os.mkfifo(fifo)
    loading = ctr.popen("load", "-i", str(fifo))
    feed = HeldFeed(fifo, data)
    try:
        wait_for(feed.half_written.is_set, "the first half of the archive to be read")
        ctr("ps", "-a").ok()
        ctr("images").ok()
        ctr("run", "--rm", "busybox", "true").ok()
        assert loading.process.poll() is None, loading.output_so_far()  # still mid-way
        assert tag.split(":")[0] not in ctr("images").ok().out
    finally:
        feed.finish()
    result = loading.wait().ok()
    assert result.out == f"Loaded image: {tag}\n", str(result)
    ctr("run", "--rm", tag, "test", "-s", "/data").ok()
    ctr("rmi", tag).ok()


def test_two_loads_of_one_archive_at_once_both_succeed_and_keep_each_layer_once(
        ctr: Ctr, worker: Worker, tmp_path: Path) -> None:
    tag = f"twice-{uuid.uuid4().hex[:8]}:1"
    path = marked_archive(tmp_path / "twice.tar", tag)
    before = set(os.listdir(worker.root / "layers"))
    loads = [ctr.popen("load", "-i", str(path)) for _ in range(2)]
    for result in [running.wait() for running in loads]:
        assert result.ok().out == f"Loaded image: {tag}\n", str(result)
    record = ctr("image", "inspect", "-f", "{{json .RootFS.Layers}}", tag).ok().out
    new = set(os.listdir(worker.root / "layers")) - before
    assert len(new) == 2 and all(f"sha256:{d}" in record for d in new), (new, record)
    assert all((worker.root / "blobs" / "sha256" / d).is_file() for d in new)
    assert not [e for e in os.listdir(worker.root / "layers") if e.startswith(".")]
    ctr("run", "--rm", tag, "test", "-s", "/data").ok()
    ctr("rmi", tag).ok()


def test_an_rmi_during_a_load_that_shares_its_layer_leaves_the_new_image_whole(
        ctr: Ctr, tmp_path: Path) -> None:
    tags = [f"shared-{uuid.uuid4().hex[:8]}:{n}" for n in (1, 2)]
    path = marked_archive(tmp_path / "shared.tar", tags[0])
    ctr("load", "-i", str(path)).ok()
    fifo = tmp_path / "feed"
    os.mkfifo(fifo)
    loading = ctr.popen("load", "-i", str(fifo))
    data = path.read_bytes().replace(tags[0].encode(), tags[1].encode())  # same length
    feed = HeldFeed(fifo, data)
    try:
        wait_for(feed.half_written.is_set, "the first half of the archive to be read")
        ctr("rmi", tags[0]).ok()  # its layers go: the load in progress needs them
    finally:
        feed.finish()
    result = loading.wait().ok()
    assert result.out == f"Loaded image: {tags[1]}\n", str(result)
    ctr("run", "--rm", tags[1], "test", "-s", "/data").ok()
    ctr("rmi", tags[1]).ok()


def test_a_load_terminated_half_way_leaves_no_temporary_file_and_no_image(
        ctr: Ctr, worker: Worker, tmp_path: Path) -> None:
    tag = f"killed-{uuid.uuid4().hex[:8]}:1"
    data = marked_archive(tmp_path / "killed.tar", tag).read_bytes()
    fifo, spool_dir = tmp_path / "feed", tmp_path / "tmp"
    os.mkfifo(fifo)
    spool_dir.mkdir()
    before = ctr.image_ids()
    loading = ctr.popen("load", "-i", str(fifo), env={"TMPDIR": str(spool_dir)})
    feed = HeldFeed(fifo, data)
    try:
        wait_for(feed.half_written.is_set, "the first half of the archive to be read")
        wait_for(lambda: any(spool_dir.iterdir()), "load to spool the archive")
        loading.process.send_signal(signal.SIGTERM)
        result = loading.wait()
    finally:
        feed.finish()
    assert result.code == 143, str(result)
    assert list(spool_dir.iterdir()) == []  # its copy of the archive went with it
    assert ctr.image_ids() == before
    assert not [entry for entry in os.listdir(worker.root / "blobs" / "sha256")
                if entry.endswith(".partial")]
