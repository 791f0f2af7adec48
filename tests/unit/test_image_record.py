"""image_record: the stdlib writer of image records, held to state.Image (what it writes
validates, reads back unchanged, and says what pydantic would say of the config), and
the pull path free of pydantic."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from typing import Any

import pytest
from pydantic import ValidationError

from shellctr.core.errors import ShellctrError
from shellctr.core.state import HistoryEntry, Image, ImageConfig
from shellctr.engine.image_record import image_record

DIFF = "sha256:" + "ab" * 32


def config_blob(**fields: Any) -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux",
                       "rootfs": {"type": "layers", "diff_ids": [DIFF]}, **fields}).encode()


def by_pydantic(blob: bytes, sizes: list[int]) -> dict[str, Any]:
    """What the models make of the same config (the record shellctr wrote before)."""
    document = json.loads(blob)
    runtime = document.get("config") or {}
    fields = {key: runtime.get(key) for key in ImageConfig.model_fields}
    return Image.model_validate({
        "id": hashlib.sha256(blob).hexdigest(), "repo_tags": ["a:1"],
        "created": document.get("created") or "1970-01-01T00:00:00Z",
        "layers": [DIFF[7:]], "size": sum(sizes),
        "config": ImageConfig.model_validate({k: v for k, v in fields.items()
                                              if v is not None}).model_dump(),
        "comment": document.get("comment") or "", "author": document.get("author") or "",
        "history": [{k: v for k, v in entry.items() if k in HistoryEntry.model_fields}
                    for entry in document.get("history") or [] if isinstance(entry, dict)],
        "layer_sizes": sizes, "tar_sizes": [4096],
    }).model_dump(mode="json")


@pytest.mark.parametrize("fields", [
    {},
    {"created": "2024-01-01T00:00:00Z", "author": "me", "comment": "imported"},
    {"created": "2024-05-06T07:08:09.123456789Z",
     "config": {"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "Entrypoint": ["/init"],
                "WorkingDir": "/srv", "User": "1000:1000", "ExposedPorts": {"80/tcp": {}},
                "Volumes": {"/data": {}}, "Labels": {"app": "shop"}, "StopSignal": "SIGINT",
                "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000},
                "Unknown": 5}},
    {"created": "2024-01-01T10:00:00+05:30",
     "history": [{"created": "2024-01-01T00:00:00.5Z", "created_by": "/bin/sh -c #(nop) ADD",
                  "empty_layer": 0}, {"created_by": "RUN x", "empty_layer": True},
                 "not an entry", {"comment": "c", "author": "a", "extra": 1}]},
    {"created": "2023-12-31", "config": {"Env": None, "Cmd": None}},
])
def test_a_record_is_what_the_model_makes_of_the_config(fields: dict[str, Any]) -> None:
    blob = config_blob(**fields)
    record = image_record(blob, ["a:1"], [123], tar_sizes=[4096])
    assert record == by_pydantic(blob, [123])
    assert list(record) == list(Image.model_fields)
    assert Image.model_validate(record).model_dump(mode="json") == record


@pytest.mark.parametrize("fields", [
    {"config": {"Env": "PATH=/bin"}},
    {"config": {"Cmd": ["sh", 1]}},
    {"config": {"Labels": {"a": 1}}},
    {"config": {"ExposedPorts": {"80/tcp": True}}},
    {"config": {"Healthcheck": ["CMD"]}},
    {"config": {"WorkingDir": 5}},
    {"created": "yesterday"},
    {"created": "2024-13-01T00:00:00Z"},
    {"history": [{"created": "noon"}]},
    {"history": [{"created_by": 5}]},
    {"history": [{"empty_layer": 2}]},
])
def test_a_config_the_model_refuses_is_refused_in_one_line(fields: dict[str, Any]) -> None:
    blob = config_blob(**fields)
    with pytest.raises(ValidationError):
        by_pydantic(blob, [1])
    with pytest.raises(ShellctrError, match=r"^invalid image config: "):
        image_record(blob, [], [1])


@pytest.mark.parametrize("diff_ids", [[], ["sha256:" + "AB" * 32], ["sha256:../../etc"],
                                      "sha256:" + "ab" * 32])
def test_diff_ids_that_are_not_sha256_hex_are_refused(diff_ids: Any) -> None:
    blob = json.dumps({"rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    with pytest.raises(ShellctrError, match=r"rootfs\.diff_ids must list sha256 digests"):
        image_record(blob, [], [1])


def test_pull_push_and_a_pulled_image_s_first_use_import_no_pydantic() -> None:
    code = ("import sys; import shellctr.cli.main, shellctr.cli.registry, "
            "shellctr.engine.pull, shellctr.engine.push, shellctr.engine.create, "
            "shellctr.engine.image_record; "
            "print(sorted(m for m in sys.modules if m.startswith('pydantic') "
            "or m == 'shellctr.core.state'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"
