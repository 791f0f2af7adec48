"""The JSON records: golden files, and the stdlib writer held to the pydantic models.

Regenerate the golden files after an intended change of format with
`SHELLCTR_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_records.py`, and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from shellctr.core.facts import process_start
from shellctr.core.layout import Layout
from shellctr.core.state import ContainerConfig, ContainerState, Image, ImageConfig, Network
from shellctr.core.store import SETTINGS, Store, dump_record
from shellctr.engine import lifecycle
from shellctr.engine.containers import on_exited
from shellctr.engine.create import create
from shellctr.engine.image import import_image
from shellctr.engine.lifecycle import FRESH_LIFE
from shellctr.engine.start import start
from shellctr.parts.request import RunRequest

from .helpers import (
    CID,
    MONITOR_NAME,
    T1,
    T2,
    FakeInit,
    RecordingHost,
    install_image,
    prepared_store,
    record_of,
    run_request,
    write_tar,
)

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("SHELLCTR_UPDATE_GOLDEN") == "1"

pytestmark = pytest.mark.usefixtures("fixed", "restore_signals")


def check_golden(name: str, record: dict[str, Any]) -> None:
    """`record` must equal golden/NAME.json exactly: keys, their order, values."""
    text = json.dumps(record, indent=2) + "\n"
    path = GOLDEN / f"{name}.json"
    if UPDATE:
        path.write_text(text)
    assert path.read_text() == text, f"{path.name} differs (SHELLCTR_UPDATE_GOLDEN=1 rewrites)"


def check_model(model: type[BaseModel], record: dict[str, Any]) -> None:
    """The record has exactly the model's fields, validates, and reads back unchanged."""
    assert list(record) == list(model.model_fields)
    assert model.model_validate(record).model_dump(mode="json") == record


def run_options() -> RunRequest:
    return run_request("busybox", ["sh", "-c", "echo hi"], name="web", env=["A=1"],
                      workdir="/srv", user="1000:1000", tty=True, interactive=True,
                      hostname="box", restart="on-failure:3", label=["app=shop", "tier"],
                      memory="256m", limits={"cpus": "1.5", "pids_limit": "100",
                                             "cpuset_cpus": "0", "cpu_shares": "512",
                                             "memory_reservation": "128m"},
                      network={"network": "shop", "ip": "10.1.0.9", "aliases": ["db"],
                               "publish": ["127.0.0.1:8080:80", "53/udp"],
                               "expose": ["9000"], "mac_address": "02:42:0A:01:00:09",
                               "dns": ["192.0.2.1"], "dns_search": ["example.org"],
                               "dns_options": ["ndots:2"], "add_host": ["gw:192.0.2.254"]})


@pytest.fixture(autouse=True)
def shop_network(layout: Layout) -> None:
    """The user network `run_options` names (--network refuses one that does not exist)."""
    layout.networks_dir.mkdir(parents=True)
    record = {"schema_version": 1, "id": "ee" * 32, "name": "shop", "driver": "bridge",
              "created": "2024-05-01T12:00:00Z", "bridge": "shbr-eeeeeeeeee",
              "subnet": "10.1.0.0/24", "gateway": "10.1.0.1", "ip_range": "",
              "internal": False, "dns": True, "labels": {}}
    Network.model_validate(record)
    layout.network_file("ee" * 32).write_text(json.dumps(record))


@pytest.fixture
def v1_controllers(cgroup_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A v1 host with the controllers the options' limits need, and 2 CPUs."""
    for name in ("memory", "cpu", "cpuset", "pids"):
        (cgroup_root / name).mkdir()
    (cgroup_root / "cpuset" / "cpuset.effective_cpus").write_text("0-1\n")


def test_container_config_golden(layout: Layout, v1_controllers: None) -> None:
    install_image(layout)
    host = RecordingHost()
    store = Store(layout, host)
    container = create(host, store, run_options())
    on_disk = layout.container_config(CID).read_text()
    assert on_disk == dump_record(dict(store.container_config(CID)))  # compact JSON, one line
    check_golden("container_config", json.loads(on_disk))
    check_model(ContainerConfig, json.loads(on_disk))
    assert container == store.container(CID)  # create returns the container as it is


def test_container_state_created_golden(layout: Layout, v1_controllers: None) -> None:
    install_image(layout)
    host = RecordingHost()
    create(host, Store(layout, host), run_options())
    record = json.loads(layout.container_state(CID).read_bytes())
    # this process is the one starting it (a `run` does next): its pid differs each run
    assert (record["starter_pid"], record["starter_start"]) == (
        os.getpid(), process_start(os.getpid()))
    check_golden("container_state_created", {**record, "starter_pid": 1, "starter_start": 1})
    check_model(ContainerState, record)


def test_container_state_running_golden(layout: Layout, v1_controllers: None) -> None:
    # the fields start records once init.py reports `ready`
    install_image(layout)
    host = RecordingHost()
    store = Store(layout, host)
    create(host, store, run_options())
    record = store.write_state(CID, status="running", pid=4242, pid_start=987654,
                               monitor_pid=4241, monitor_start=987650, started_at=T1,
                               starter_pid=0, starter_start=0)
    check_golden("container_state_running", dict(record))
    check_model(ContainerState, dict(record))


def test_container_state_exited_golden(layout: Layout, v1_controllers: None,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    install_image(layout)
    host = RecordingHost()
    store = Store(layout, host)
    create(host, store, run_options())
    store.write_state(CID, status="running", pid=4242, pid_start=987654, monitor_pid=4241,
                      monitor_start=987650, started_at=T1, restart_count=2)  # kept
    monkeypatch.setattr(lifecycle, "now_iso", lambda: T2)
    lifecycle.end(host, store, CID, 137)
    record = json.loads(layout.container_state(CID).read_bytes())
    check_golden("container_state_exited", record)
    check_model(ContainerState, record)


# -- schema version 1: config.json held the settings ----------------------------------------
def v1_root(layout: Layout, state: str) -> Store:
    """A root holding a container written by shellctr before schema 2."""
    prepared_store(layout)
    layout.container_dir(CID).mkdir(parents=True)
    for name, golden in (("config.json", "container_config_v1"), ("state.json", state)):
        (layout.container_dir(CID) / name).write_text(
            (GOLDEN / f"{golden}.json").read_text())
    return Store(layout, RecordingHost())


@pytest.mark.parametrize("state", ["container_state_created_v1", "container_state_running_v1",
                                   "container_state_exited_v1"])
def test_a_version_1_container_reads_as_version_2(layout: Layout, state: str) -> None:
    store = v1_root(layout, state)
    old_config = json.loads((GOLDEN / "container_config_v1.json").read_text())
    old_state = json.loads((GOLDEN / f"{state}.json").read_text())
    config, current = store.container_config(CID), store.container_state(CID)
    check_model(ContainerConfig, {key: config[key] for key in ContainerConfig.model_fields})
    ContainerState.model_validate(current)
    assert config["schema_version"] == current["schema_version"] == 2
    for key in SETTINGS:  # the settings come from the old config ...
        assert current[key] == old_config[key], key  # type: ignore[literal-required]
    for key, value in old_state.items():  # ... the life from the old state
        if key != "schema_version":
            assert current[key] == value, key  # type: ignore[literal-required]
    assert store.container(CID)["name"] == "web" == store.container_names()[CID]


def test_a_version_1_container_is_written_back_as_version_2_and_its_config_stays(
        layout: Layout) -> None:
    store = v1_root(layout, "container_state_running_v1")
    config_file = layout.container_config(CID).read_text()
    with store.lock():
        store.write_state(CID, name="api")  # a rename
    written = json.loads(layout.container_state(CID).read_text())
    assert written["schema_version"] == 2 and written["name"] == "api"
    ContainerState.model_validate(written)
    assert layout.container_config(CID).read_text() == config_file  # frozen
    assert store.container(CID)["name"] == "api"  # the newer state.json wins
    assert store.container(CID)["memory"] == json.loads(config_file)["memory"]


def test_the_typed_records_have_the_models_fields() -> None:
    from typing import get_type_hints

    from shellctr.core import records

    assert list(get_type_hints(records.ConfigRecord)) == list(ContainerConfig.model_fields)
    assert set(get_type_hints(records.StateRecord)) == set(ContainerState.model_fields)
    assert set(get_type_hints(records.SettingsRecord)) == set(SETTINGS)
    assert set(get_type_hints(records.ContainerRecord)) == (
        set(ContainerConfig.model_fields) | set(SETTINGS))


def test_image_golden(layout: Layout, tmp_path: Path) -> None:
    prepared_store(layout)
    host = RecordingHost()
    image = import_image(
        host, Store(layout, host), write_tar(tmp_path / "rootfs.tar"),
        ['CMD ["sh"]', "ENV LANG=C.UTF-8", "WORKDIR /home", "USER user"], "base:1",
        comment="from a test")
    record = json.loads(layout.image_file(image.id).read_bytes())
    check_golden("image", record)
    check_model(Image, record)
    check_model(ImageConfig, record["config"])


def test_every_record_run_writes_validates_against_the_models(layout: Layout) -> None:
    install_image(layout)
    fake = FakeInit(code=7)
    host = RecordingHost(substitute={MONITOR_NAME: fake})
    store = Store(layout, host)
    options = run_request("busybox", ["true"], env=["A=1"], workdir="/srv", user="1000",
                         tty=True, rm=False)  # -t without -i: no terminal needed
    cid = create(host, store, options)["id"]
    start(host, store, cid, attach=True)
    assert fake.attach and fake.hook[-2:] == ["_exited", cid]  # -t: the hook records the end
    on_exited(host, store, cid)
    written = [(Path(cmd.redirect or "").name, record_of(cmd)) for cmd in host.cmds
               if cmd.redirect and cmd.redirect.endswith(".json")
               and not cmd.redirect.endswith("init.json")]
    assert [(name, record.get("status")) for name, record in written] == [
        ("config.json", None), ("state.json", "created"), ("state.json", "running"),
        ("state.json", "exited")]
    check_model(ContainerConfig, written[0][1])
    for _, record in written[1:]:
        check_model(ContainerState, record)


def test_the_exit_of_a_failed_exec_validates(layout: Layout) -> None:
    install_image(layout)
    message = {"message": "exec: nope", "code": 127}
    host = RecordingHost(substitute={MONITOR_NAME: FakeInit(127, [message])})
    store = Store(layout, host)
    with pytest.raises(Exception, match="exec: nope"):
        start(host, store, create(host, store, run_request("busybox", ["nope"]))["id"], attach=True)
    check_model(ContainerState, record_of(host.cmds[-1]))


def test_a_fresh_life_is_the_models_defaults() -> None:
    defaults = ContainerState(name="web").model_dump(mode="json")
    assert {key: defaults[key] for key in FRESH_LIFE} == FRESH_LIFE
    assert {key: defaults[key] for key in SETTINGS if key != "name"} | {"name": ""} == SETTINGS


@pytest.mark.parametrize("when", ["2024-05-01T12:01:00Z", "2024-05-01T12:01:00.000001Z"])
def test_times_as_now_iso_writes_them_read_back_unchanged(when: str) -> None:
    assert ContainerState(name="w", finished_at=when).model_dump(mode="json")[
        "finished_at"] == when


def test_now_iso_is_utc_with_a_z() -> None:
    from datetime import UTC, datetime

    from shellctr.core.store import now_iso

    text = now_iso()
    assert text.endswith("Z") and "+" not in text
    assert abs(datetime.fromisoformat(text) - datetime.now(UTC)).total_seconds() < 60
