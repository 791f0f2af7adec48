"""`events`: the journal every verb appends to (daemonless), replayed in time order
within --since/--until, filtered as Docker filters, and followed; with parallel verbs."""

from __future__ import annotations

import json
import time
from typing import Any

from .support import Ctr, remove_all, run_detached, wait_for

NONE = ("--network", "none")


def replay(ctr: Ctr, since: str, *flags: str) -> list[dict[str, Any]]:
    until = f"{time.time() + 0.001:.6f}"
    out = ctr("events", "--since", since, "--until", until, "--format", "json", *flags,
              trace=False).ok().out
    return [json.loads(line) for line in out.splitlines()]


def test_a_containers_life_in_order(ctr: Ctr) -> None:
    since = f"{time.time():.6f}"
    try:
        cid = run_detached(ctr, "--name", "life", *NONE, "-l", "app=shop", "busybox",
                           "sleep", "1000")
        ctr("pause", "life").ok()
        ctr("unpause", "life").ok()
        ctr("rename", "life", "life2").ok()
        ctr("stop", "-t", "0", "life2").ok()
        ctr("rm", "life2").ok()
        events = [e for e in replay(ctr, since) if e["Actor"]["ID"] == cid]
        assert [e["Action"] for e in events] == [
            "create", "start", "pause", "unpause", "rename", "kill", "kill", "die", "stop",
            "destroy"], events
        assert [e["timeNano"] for e in events] == sorted(e["timeNano"] for e in events)
        die = next(e for e in events if e["Action"] == "die")
        assert die["Actor"]["Attributes"]["exitCode"] == "137"
        assert die["Actor"]["Attributes"]["app"] == "shop"
        assert events[0]["Actor"]["Attributes"] == {"app": "shop", "image": "busybox",
                                                    "name": "life"}
        assert events[0]["status"] == "create" and events[0]["from"] == "busybox"
        assert events[4]["Actor"]["Attributes"]["oldName"] == "life"
        line = ctr("events", "--since", since, "--until", f"{time.time():.6f}", "--filter",
                   "event=destroy", trace=False).ok().out.strip()
        assert line.endswith(f"container destroy {cid} (app=shop, image=busybox, name=life2)")
    finally:
        remove_all(ctr)


def test_a_detached_containers_end_comes_from_its_monitors_record(ctr: Ctr) -> None:
    since = f"{time.time():.6f}"
    try:
        cid = run_detached(ctr, *NONE, "busybox", "sh", "-c", "exit 4")
        assert ctr("wait", cid).ok().out == "4\n"
        wait_for(lambda: any(e["Action"] == "die" for e in replay(ctr, since)), "die")
        die = next(e for e in replay(ctr, since) if e["Action"] == "die")
        finished = inspect_finished(ctr, cid)
        assert die["Actor"]["Attributes"]["exitCode"] == "4"
        assert abs(die["timeNano"] / 1e9 - finished) < 0.001  # the monitor's own time
    finally:
        remove_all(ctr)


def inspect_finished(ctr: Ctr, cid: str) -> float:
    from .support import rfc3339

    stamp = ctr("inspect", "-f", "{{.State.FinishedAt}}", cid, trace=False).ok().out.strip()
    return rfc3339(stamp).timestamp()


def test_filters_with_parallel_verbs(ctr: Ctr) -> None:
    since = f"{time.time():.6f}"
    names = [f"par{n}" for n in range(6)]
    try:
        running = [ctr.popen("run", "--name", name, *NONE, "-l", f"n={name}", "busybox",
                             "true") for name in names]
        for process in running:
            assert process.wait().code == 0
        events = replay(ctr, since)
        for name in names:  # each container's own events, in its order
            own = [e["Action"] for e in events if e["Actor"]["Attributes"].get("name") == name]
            assert own == ["create", "start", "die"], (name, own)
        assert [e["timeNano"] for e in events] == sorted(e["timeNano"] for e in events)
        starts = replay(ctr, since, "--filter", "event=start")
        assert sorted(e["Actor"]["Attributes"]["name"] for e in starts) == names
        one = replay(ctr, since, "--filter", "container=par3")
        assert {e["Actor"]["Attributes"]["name"] for e in one} == {"par3"} and len(one) == 3
        either = replay(ctr, since, "-f", "container=par1", "-f", "container=par2",
                        "-f", "event=die")
        assert sorted(e["Actor"]["Attributes"]["name"] for e in either) == ["par1", "par2"]
        labelled = replay(ctr, since, "-f", "label=n=par5", "-f", "type=container")
        assert len(labelled) == 3
        assert replay(ctr, since, "-f", "type=network") == []
        template = ctr("events", "--since", since, "--until", f"{time.time():.6f}",
                       "-f", "container=par0", "--format", "{{.Type}} {{.Action}}",
                       trace=False).ok().out
        assert template == "container create\ncontainer start\ncontainer die\n"
        bad = ctr("events", "-f", "nope=1", trace=False)
        assert bad.code != 0 and "invalid filter" in bad.err
    finally:
        remove_all(ctr)


def test_events_follows_what_happens_next(ctr: Ctr) -> None:
    # --since now: what happens after it, whenever the follower gets to read
    follower = ctr.popen("events", "--since", f"{time.time():.6f}", "--format",
                         "{{.Action}} {{.Actor.Attributes.name}}", "--filter",
                         "container=followed", trace=False)
    try:
        ctr("run", "--rm", "--name", "followed", *NONE, "busybox", "true").ok()
        wait_for(lambda: "destroy followed" in follower.out_path.read_text(), "the destroy")
        assert follower.process.poll() is None  # it goes on following
        assert follower.out_path.read_text().splitlines() == [
            "create followed", "start followed", "die followed", "destroy followed"]
    finally:
        follower.kill()
        remove_all(ctr)


def test_until_in_the_past_replays_and_returns(ctr: Ctr) -> None:
    result = ctr("events", "--since", "10m", "--until", "1s", trace=False)
    assert result.code == 0, str(result)


def test_networks_volumes_and_images_have_their_events(ctr: Ctr) -> None:
    since = f"{time.time():.6f}"
    try:
        ctr("network", "create", "--subnet", "10.232.0.0/24", "evnet").ok()
        ctr("volume", "create", "evvol").ok()
        ctr("tag", "busybox", "evtag:1").ok()
        cid = run_detached(ctr, "--network", "evnet", "-v", "evvol:/data", "busybox", "true")
        assert ctr("wait", cid).ok().out == "0\n"
        ctr("rm", cid).ok()
        ctr("rmi", "evtag:1").ok()
        ctr("volume", "rm", "evvol").ok()
        ctr("network", "rm", "evnet").ok()
        seen = [(e["Type"], e["Action"], e["Actor"]["Attributes"].get("name", ""))
                for e in replay(ctr, since) if e["Type"] != "container"]
        assert seen == [("network", "create", "evnet"), ("volume", "create", ""),
                        ("image", "tag", "evtag:1"),
                        ("network", "connect", "evnet"), ("network", "disconnect", "evnet"),
                        ("image", "untag", "evtag:1"),
                        ("volume", "destroy", ""), ("network", "destroy", "evnet")], seen
        connect = replay(ctr, since, "-f", "type=network", "-f", "event=connect")
        assert connect[0]["Actor"]["Attributes"]["container"] == cid
        assert replay(ctr, since, "-f", "volume=evvol")[0]["Actor"]["ID"] == "evvol"
    finally:
        remove_all(ctr)
        ctr("volume", "rm", "evvol")
        ctr("network", "rm", "evnet")


def test_exec_has_its_create_start_and_die(ctr: Ctr) -> None:
    since = f"{time.time():.6f}"
    try:
        cid = run_detached(ctr, "--name", "execd", *NONE, "busybox", "sleep", "1000")
        assert ctr("exec", "execd", "sh", "-c", "exit 3").code == 3
        execs = [e for e in replay(ctr, since, "-f", "container=execd")
                 if e["Action"].startswith("exec_")]
        assert [e["Action"] for e in execs] == [
            "exec_create: sh -c exit 3", "exec_start: sh -c exit 3", "exec_die"], execs
        assert execs[2]["Actor"]["Attributes"]["exitCode"] == "3"
        assert len({e["Actor"]["Attributes"]["execID"] for e in execs}) == 1
        assert all(e["Actor"]["ID"] == cid for e in execs)
        assert replay(ctr, since, "-f", "event=exec_start")[0]["Actor"]["ID"] == cid
    finally:
        remove_all(ctr)
