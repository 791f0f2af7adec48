"""`--log-driver` and `--log-opt max-size=,max-file=`: the monitor rotates the log, and
`logs` (and `logs -f` across a rotation) stays complete over the files kept."""

from __future__ import annotations

import json
from pathlib import Path

from .support import Ctr, one_line_error, remove_all, run_detached

NONE = ("--network", "none")


def log_files(ctr: Ctr, cid: str) -> list[Path]:
    return sorted((ctr.root / "containers" / cid).glob("container.log*"))


def test_rotation_keeps_logs_complete_across_files(ctr: Ctr) -> None:
    try:
        cid = run_detached(ctr, *NONE, "--log-opt", "max-size=4k", "--log-opt", "max-file=100",
                           "busybox", "sh", "-c", "seq 1 2000; seq 2001 3000 >&2")
        assert ctr("wait", cid).ok().out == "0\n"
        files = log_files(ctr, cid)
        assert len(files) > 10, files  # it did rotate
        assert all(f.stat().st_size <= 4096 for f in files), files
        result = ctr("logs", cid, trace=False).ok()
        assert result.out == "".join(f"{n}\n" for n in range(1, 2001))
        assert result.err == "".join(f"{n}\n" for n in range(2001, 3001))
        tail = ctr("logs", "--tail", "3", cid, trace=False).ok()
        assert tail.err == "2998\n2999\n3000\n"
    finally:
        remove_all(ctr)


def test_max_file_drops_the_oldest_and_keeps_the_rest_in_order(ctr: Ctr) -> None:
    try:
        cid = run_detached(ctr, *NONE, "--log-opt", "max-size=2k", "--log-opt", "max-file=3",
                           "busybox", "seq", "1", "3000")
        assert ctr("wait", cid).ok().out == "0\n"
        assert [f.name for f in log_files(ctr, cid)] == \
            ["container.log", "container.log.1", "container.log.2"]
        numbers = [int(n) for n in ctr("logs", cid, trace=False).ok().out.split()]
        assert numbers[-1] == 3000 and numbers[0] > 1  # the oldest went ...
        assert numbers == list(range(numbers[0], 3001))  # ... the rest has no gap
    finally:
        remove_all(ctr)


def test_follow_reads_through_rotations(ctr: Ctr) -> None:
    try:
        cid = run_detached(ctr, *NONE, "--log-opt", "max-size=3k", "--log-opt", "max-file=100",
                           "busybox", "sh", "-c",
                           "sleep 1; i=1; while [ $i -le 1500 ]; do echo $i; i=$((i+1)); done")
        follower = ctr.popen("logs", "-f", cid, trace=False)
        result = follower.wait()
        assert result.code == 0, str(result)
        assert result.out == "".join(f"{n}\n" for n in range(1, 1501)), str(result)[-2000:]
        assert len(log_files(ctr, cid)) > 5
    finally:
        remove_all(ctr)


def test_log_driver_none_writes_no_log_and_logs_says_so(ctr: Ctr) -> None:
    try:
        cid = run_detached(ctr, *NONE, "--log-driver", "none", "busybox", "echo", "hi")
        assert ctr("wait", cid).ok().out == "0\n"
        assert not any(f.stat().st_size for f in log_files(ctr, cid))
        assert "does not support reading" in one_line_error(ctr("logs", cid, trace=False))
        assert ctr("run", "--rm", *NONE, "--log-driver", "none", "busybox", "echo", "shown",
                   trace=False).ok().out == "shown\n"
    finally:
        remove_all(ctr)


def test_local_driver_rotates_by_default(ctr: Ctr) -> None:
    try:
        cid = run_detached(ctr, *NONE, "--log-driver", "local", "busybox", "echo", "hi")
        assert ctr("wait", cid).ok().out == "0\n"
        config = ctr("inspect", "-f", "{{json .HostConfig.LogConfig}}", cid, trace=False).ok()
        assert json.loads(config.out) == \
            {"Type": "local", "Config": {"max-file": "5", "max-size": "20m"}}, str(config)
        assert ctr("logs", cid, trace=False).ok().out == "hi\n"
    finally:
        remove_all(ctr)
