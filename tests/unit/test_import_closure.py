"""What each read verb imports: run in a process of its own, as bin/shellctr runs it, in a
store with an image, a network with a published port, a volume, a running and an exited
container; the modules it loaded are listed after the verb ran.

The read verbs answer polling scripts (`docker ps` in a loop): an interpreter start is all
they may cost beyond their own work (bench/cli.py measures them). pydantic (~80 ms here),
plumbum (~60 ms) and tabulate (~30 ms) are out of their reach, and so are the modules of
work they do not do: running commands (subprocess, shutil), starting containers (the
start path, init.py, ctypes, socket), validating records (state's models).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from shellctr.core.facts import process_start
from shellctr.core.layout import CHECKOUT, Layout
from shellctr.core.state import Endpoint, Network, PortBinding, Volume, save
from shellctr.core.store import Store
from shellctr.engine.create import create

from .helpers import CID, IMAGE_ID, T1, T2, RecordingHost, install_image, run_request, set_state

EXITED = "fedcba9876543210" * 4
NETWORK_ID = "ef" * 32
# each read verb: its argv after the global flags
READ_VERBS = {
    "ps -a": ["ps", "-a"],
    "ps -a --format json": ["ps", "-a", "--format", "json"],
    "ps -q": ["ps", "-q"],
    "images": ["images"],
    "inspect CTR": ["inspect", "web"],
    "inspect IMG": ["inspect", "busybox"],
    "image inspect IMG": ["image", "inspect", "busybox"],
    "port CTR": ["port", "web"],
    "logs --tail 1 CTR": ["logs", "--tail", "1", "web"],
    "network ls": ["network", "ls"],
    "volume ls": ["volume", "ls"],
    "wait CTR": ["wait", EXITED],
}
# out of every read verb's closure
FORBIDDEN = {
    "pydantic", "pydantic_core", "plumbum", "tabulate",  # the ~170 ms the issue measured
    "typing", "dataclasses", "importlib.metadata",  # tabulate's and the models' stdlib
    "subprocess", "shutil", "socket", "ctypes", "threading",  # no command, no container
    "argparse", "gettext", "shellctr.cli.parser",  # the fast parser takes their lines
    # the standard library that is a read verb's budget on its own (README, Performance):
    # re and enum (~5 ms; argparse, json's Python half, shlex, fnmatch import them),
    # pathlib (~4 ms with urllib.parse and ipaddress), datetime's Python half (~1.5 ms)
    "re", "enum", "json", "shlex", "fnmatch", "pathlib", "urllib.parse", "ipaddress",
    "datetime", "signal", "collections", "contextlib", "importlib", "warnings",
    "shellctr.core.state", "shellctr.engine.start", "shellctr.inside.init",
    "shellctr.inside.rootfs", "shellctr.inside.final",
    "shellctr.engine.image", "shellctr.engine.layers",
}
LISTED = ("import sys\n"
          "from shellctr.cli.main import main\n"
          "code = main(sys.argv[2:])\n"
          "sys.stdout.flush()\n"
          "with open(sys.argv[1], 'w') as listing:\n"
          "    listing.write('\\n'.join(sorted(sys.modules)))\n"
          "sys.exit(code)\n")


@pytest.fixture
def store_root(layout: Layout, fixed: None) -> Layout:
    """A store with one of everything a read verb shows, as the engine writes them."""
    install_image(layout)
    host = RecordingHost()
    store = Store(layout, host)
    layout.networks_dir.mkdir()
    save(store, layout.network_file(NETWORK_ID), Network(
        id=NETWORK_ID, name="appnet", created=T1, bridge="shc-appnet", subnet="10.9.0.0/24",
        gateway="10.9.0.1"))
    create(host, store, run_request("busybox", ["sleep", "1000"], name="web", network={
        "network": "appnet", "publish": ["8080:80"]}))
    me = os.getpid()  # the running container's PID 1 and monitor: alive while we test
    set_state(layout, "running", pid=me, pid_start=process_start(me), monitor_pid=me,
              monitor_start=process_start(me), started_at=T1)
    layout.container_log(CID).write_text(json.dumps(
        {"log": "hello\n", "stream": "stdout", "time": T1}) + "\n")
    exited = layout.container_dir(EXITED)
    exited.mkdir()
    for name in ("config.json", "state.json"):
        record = json.loads((layout.container_dir(CID) / name).read_text())
        record.update({"id": EXITED} if name == "config.json" else {
            "name": "done", "status": "exited", "pid": 0, "monitor_pid": 0, "exit_code": 3,
            "started_at": T1, "finished_at": T2})
        (exited / name).write_text(json.dumps(record))
    layout.network_endpoints(NETWORK_ID).parent.mkdir(parents=True, exist_ok=True)
    endpoint = Endpoint(name="appnet", ip="10.9.0.2", mac="02:42:0a:09:00:02", veth="shc-v1",
                        ifname="eth0", ports=[PortBinding(host_port=8080, port=80)])
    layout.network_endpoints(NETWORK_ID).write_text(json.dumps(
        {CID: endpoint.model_dump(mode="json")}))
    layout.volume_dir("data").mkdir(parents=True)
    save(store, layout.volume_record("data"), Volume(name="data", created=T1))
    return layout


def imported(layout: Layout, argv: list[str], tmp_path: Path) -> tuple[set[str], str]:
    """The modules `shellctr ARGV` loaded, run as bin/shellctr runs it; and its output."""
    listing = tmp_path / "modules"
    site = sysconfig.get_paths()["purelib"]  # the venv's: pydantic & co. are importable
    env = {**os.environ, "PYTHONPATH": f"{CHECKOUT}{os.pathsep}{site}"}
    done = subprocess.run(
        [sys.executable, "-S", "-P", "-c", LISTED, str(listing), "--root", str(layout.root),
         "--runroot", str(layout.runroot), *argv],
        env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return set(listing.read_text().split()), done.stdout


@pytest.mark.parametrize("verb", READ_VERBS)
def test_a_read_verb_imports_no_model_no_command_layer_no_table_library(
        store_root: Layout, tmp_path: Path, verb: str) -> None:
    modules, out = imported(store_root, READ_VERBS[verb], tmp_path)
    assert out.strip(), f"{verb} showed nothing: not the path a user's store takes"
    assert sorted(FORBIDDEN & modules) == []


def test_the_store_shows_each_read_verb_something(store_root: Layout, tmp_path: Path) -> None:
    """The store above takes the verbs down their full paths: ports, logs, exit codes."""
    outputs = {verb: imported(store_root, argv, tmp_path)[1]
               for verb, argv in READ_VERBS.items() if verb in (
                   "ps -a", "port CTR", "logs --tail 1 CTR", "wait CTR", "images")}
    assert "0.0.0.0:8080->80/tcp" in outputs["ps -a"] and "Exited (3)" in outputs["ps -a"]
    assert outputs["port CTR"] == "80/tcp -> 0.0.0.0:8080\n"
    assert outputs["logs --tail 1 CTR"] == "hello\n"
    assert outputs["wait CTR"] == "3\n"
    assert IMAGE_ID[:12] in outputs["images"]
