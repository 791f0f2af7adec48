"""`logs`: what a container printed, kept by its monitor for every container, attached
or detached; stdout and stderr apart; --tail, -t, --since/--until and -f."""

from __future__ import annotations

import re
from datetime import timedelta

from .support import DEFAULT_TIMEOUT, Ctr, remove_all, rfc3339, run_detached, wait_for

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def test_foreground_run_is_logged_with_stdout_and_stderr_apart(ctr: Ctr) -> None:
    script = "echo out1; echo err1 >&2; echo out2; echo err2 >&2"
    ctr("run", "--name", "fg", "busybox", "sh", "-c", script).ok()
    try:
        result = ctr("logs", "fg", trace=False).ok()
        assert result.out == "out1\nout2\n", str(result)
        assert result.err == "err1\nerr2\n", str(result)
    finally:
        remove_all(ctr)


def test_detached_run_is_logged_with_stdout_and_stderr_apart(ctr: Ctr) -> None:
    try:
        cid = run_detached(ctr, "busybox", "sh", "-c",
                           "echo out1; echo err1 >&2; printf 'no newline'")
        assert ctr("wait", cid).ok().out == "0\n"
        result = ctr("logs", cid, trace=False).ok()
        assert result.out == "out1\nno newline", str(result)
        assert result.err == "err1\n", str(result)
    finally:
        remove_all(ctr)


def test_logs_of_an_unknown_container_is_an_error(ctr: Ctr) -> None:
    result = ctr("logs", "no-such-container", trace=False)
    assert result.code == 1, str(result)
    assert len(result.err_lines) == 1 and "no-such-container" in result.err, str(result)


def test_tail_of_a_hundred_thousand_lines(ctr: Ctr) -> None:
    try:
        ctr("run", "-d", "--name", "chatty", "busybox", "seq", "1", "100000").ok()
        assert ctr("wait", "chatty").ok().out == "0\n"
        expected = "".join(f"{n}\n" for n in range(99996, 100001))
        for flags in (["--tail", "5"], ["-n", "5"], ["--tail=5"]):
            result = ctr("logs", *flags, "chatty", trace=False).ok()
            assert result.out == expected, str(result)
        assert ctr("logs", "--tail", "0", "chatty", trace=False).ok().out == ""
        every = ctr("logs", "--tail", "all", "chatty", trace=False).ok().out
        assert every == "".join(f"{n}\n" for n in range(1, 100001))
        assert ctr("logs", "chatty", trace=False).ok().out == every
    finally:
        remove_all(ctr)


def test_invalid_tail_is_refused(ctr: Ctr) -> None:
    try:
        ctr("run", "--name", "quiet", "busybox", "true").ok()
        result = ctr("logs", "--tail", "many", "quiet", trace=False)
        assert result.code == 1 and len(result.err_lines) == 1, str(result)
    finally:
        remove_all(ctr)


def stamped(text: str) -> list[tuple[str, str]]:
    """`logs -t` lines as (timestamp, text)."""
    pairs = []
    for line in text.splitlines():
        stamp, _, rest = line.partition(" ")
        assert RFC3339.match(stamp), line
        pairs.append((stamp, rest))
    return pairs


def test_timestamps_since_and_until(ctr: Ctr) -> None:
    try:
        ctr("run", "--name", "phases", "busybox", "sh", "-c",
            "echo early; echo early-err >&2; sleep 0.3; echo late").ok()
        result = ctr("logs", "-t", "phases", trace=False).ok()
        out, err = stamped(result.out), stamped(result.err)
        assert [text for _, text in out] == ["early", "late"], str(result)
        assert [text for _, text in err] == ["early-err"], str(result)
        early, late = rfc3339(out[0][0]), rfc3339(out[1][0])
        assert early < late, str(result)
        middle = early + (late - early) / 2

        def logs(*flags: str) -> tuple[str, str]:
            found = ctr("logs", *flags, "phases", trace=False).ok()
            return found.out, found.err

        rfc = middle.isoformat().replace("+00:00", "Z")
        assert logs("--since", rfc) == ("late\n", "")
        assert logs("--until", rfc) == ("early\n", "early-err\n")
        unix = f"{middle.timestamp():.6f}"
        assert logs("--since", unix) == ("late\n", "")
        assert logs("--until", unix) == ("early\n", "early-err\n")
        assert logs("--since", out[0][0], "--until", out[0][0]) == ("early\n", "")
        before = (early - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
        assert logs("--since", before, "--tail", "1") == ("late\n", "")  # window, then tail
        assert logs("--since", "1h") == ("early\nlate\n", "early-err\n")
        assert logs("--until", "1h") == ("", "")
        bad = ctr("logs", "--since", "yesterday-ish", "phases", trace=False)
        assert bad.code == 1 and len(bad.err_lines) == 1, str(bad)
    finally:
        remove_all(ctr)


def test_follow_prints_new_output_and_ends_with_the_container(ctr: Ctr) -> None:
    try:
        cid = run_detached(ctr, "--name", "talker", "busybox", "sh", "-c",
                           "echo first; while [ ! -e /go ]; do sleep 0.05; done; "
                           "echo second; echo second-err >&2")
        follower = ctr.popen("logs", "-f", "talker", trace=False)
        wait_for(lambda: "first" in follower.out_path.read_text()
                 or follower.process.poll() is not None, "logs -f to print the first line")
        assert follower.process.poll() is None, follower.output_so_far()  # still following
        ctr("exec", "--detach", cid, "touch", "/go").ok()  # it may die with the container
        result = follower.wait(timeout=DEFAULT_TIMEOUT)  # it ends when the container does
        assert result.code == 0, str(result)
        assert result.out == "first\nsecond\n", str(result)
        assert result.err == "second-err\n", str(result)
        # -f of a container that has ended prints everything and ends at once
        done = ctr("logs", "-f", "-n", "2", "talker", trace=False, timeout=DEFAULT_TIMEOUT)
        assert (done.code, done.out, done.err) == (0, "second\n", "second-err\n"), str(done)
    finally:
        remove_all(ctr)


def test_follow_as_an_rm_container_is_removed_ends_cleanly(ctr: Ctr) -> None:
    ids, followers = [], []
    for _ in range(8):  # each `logs -f` starts as its container's hook may be removing it
        ids.append(run_detached(ctr, "--rm", "busybox", "sh", "-c", "echo hi"))
        followers.append(ctr.popen("logs", "-f", ids[-1], trace=False))
    for cid, follower in zip(ids, followers, strict=True):
        result = follower.wait()
        if result.code == 0:
            assert result.out in ("hi\n", ""), str(result)  # "": removed as it began
            assert result.err == "", str(result)
        else:
            assert result.code == 1 and result.out == "", str(result)
            assert result.err == f"shellctr: no such container: {cid}\n", str(result)
    wait_for(lambda: ctr.container_ids() == [], "the --rm containers to be removed")
