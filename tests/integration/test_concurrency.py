"""Several shellctr processes at once, with no daemon to serialise them: names stay
unique and no state file is ever torn or lost."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Sequence

from .support import (
    DEFAULT_TIMEOUT,
    FULL_ID,
    Ctr,
    Result,
    Worker,
    inspect,
    remove_all,
    run_detached,
)


def all_at_once(ctr: Ctr, calls: Sequence[Sequence[str]]) -> list[Result]:
    """Start every call before waiting for any; their results, in order."""
    processes = [(list(args), subprocess.Popen(ctr.argv(args, trace=False),
                                               stdin=subprocess.DEVNULL,
                                               stdout=subprocess.PIPE,
                                               stderr=subprocess.PIPE, env=ctr.env()))
                 for args in calls]
    results = []
    for args, process in processes:
        out, err = process.communicate(timeout=DEFAULT_TIMEOUT)
        results.append(Result(args, process.returncode, out.decode(errors="replace"),
                              err.decode(errors="replace")))
    return results


def assert_state_files_valid(worker: Worker) -> None:
    directory = worker.root / "containers"
    for entry in directory.iterdir():
        for name in ("config.json", "state.json"):
            record = json.loads((entry / name).read_text())
            assert isinstance(record, dict) and record["schema_version"] == 2, record
        leftovers = [p.name for p in entry.iterdir() if p.name.endswith(".tmp")]
        assert leftovers == [], leftovers


def test_the_same_name_ten_times_at_once_makes_one_container(ctr: Ctr,
                                                             worker: Worker) -> None:
    try:
        results = all_at_once(ctr, [["run", "-d", "--name", "only", "busybox", "sleep",
                                     "1000"]] * 10)
        won = [r for r in results if r.code == 0]
        lost = [r for r in results if r.code != 0]
        assert len(won) == 1, "\n".join(map(str, results))
        assert FULL_ID.match(won[0].out.strip()), str(won[0])
        assert len(lost) == 9, "\n".join(map(str, results))
        for result in lost:
            assert result.code == 125, str(result)
            assert result.out == "", str(result)
            lines = result.err.splitlines()
            assert len(lines) == 1 and lines[0].startswith("shellctr:"), str(result)
            assert "already in use" in lines[0] and '"only"' in lines[0], str(result)
        assert ctr.container_ids(full=True) == [won[0].out.strip()]
        assert inspect(ctr, "only")["State"]["Running"] is True
        assert_state_files_valid(worker)
    finally:
        remove_all(ctr)


def test_ten_unnamed_containers_at_once_get_distinct_ids_and_names(ctr: Ctr,
                                                                   worker: Worker) -> None:
    try:
        results = all_at_once(ctr, [["run", "-d", "busybox", "sleep", "1000"]] * 10)
        assert all(r.code == 0 for r in results), "\n".join(map(str, results))
        ids = {r.out.strip() for r in results}
        assert len(ids) == 10 and set(ctr.container_ids(full=True)) == ids
        names = ctr("ps", "--format", "{{.Names}}", trace=False).ok().out.split()
        assert len(set(names)) == 10, names
        assert_state_files_valid(worker)
    finally:
        remove_all(ctr)


def test_parallel_stops_removals_and_execs_keep_the_state_consistent(
        ctr: Ctr, worker: Worker) -> None:
    try:
        waits = "trap 'exit 0' TERM; sleep 1000 & wait"
        for name in ("stop1", "stop2", "rm1", "rm2", "exec1", "exec2"):
            run_detached(ctr, "--name", name, "busybox", "sh", "-c", waits)
        results = all_at_once(ctr, [
            ["stop", "stop1"], ["rm", "-f", "rm1"], ["exec", "exec1", "echo", "one"],
            ["stop", "stop2"], ["rm", "-f", "rm2"], ["exec", "exec2", "echo", "two"],
            ["ps", "-a"], ["inspect", "exec1", "stop1"],
        ])
        assert all(r.code == 0 for r in results), "\n".join(map(str, results))
        assert [r.out for r in results[:6]] == ["stop1\n", "rm1\n", "one\n",
                                                "stop2\n", "rm2\n", "two\n"]

        assert_state_files_valid(worker)
        table = ctr("ps", "-a", "--format", "{{.Names}} {{.Status}}", trace=False).ok()
        rows = dict(line.split(" ", 1) for line in table.out.splitlines())
        assert sorted(rows) == ["exec1", "exec2", "stop1", "stop2"], str(table)
        for name in ("stop1", "stop2"):
            assert re.fullmatch(r"Exited \(0\) .+ ago", rows[name]), str(table)
        for name in ("exec1", "exec2"):
            assert rows[name].startswith("Up "), str(table)
        # and the rest can be driven as usual
        results = all_at_once(ctr, [["rm", "-f", "exec1"], ["rm", "-f", "exec2"],
                                    ["rm", "stop1"], ["rm", "stop2"]])
        assert all(r.code == 0 for r in results), "\n".join(map(str, results))
        assert ctr.container_ids() == []
    finally:
        remove_all(ctr)
