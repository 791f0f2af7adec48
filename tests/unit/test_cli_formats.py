"""--format everywhere Docker has it, in-process: `json` (one object a line, parsed back),
`table` (the default columns), `table TEMPLATE` (headers from the fields), plain templates;
and the read verbs' own data: version, info, system df, history's parents, container group."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from shellctr.core.layout import Layout

from .helpers import IMAGE_ID, LAYER, T0, image_model, install_image


@pytest.fixture
def web(cli: Any, layout: Layout) -> str:
    install_image(layout)
    code, out, err = cli("create", "--name", "web", "-l", "tier=front", "busybox", "sleep", "9")
    assert code == 0, err
    return str(out.strip())


def json_lines(out: str) -> list[dict[str, Any]]:
    lines = out.splitlines()
    assert lines and all(line.startswith("{") for line in lines), out
    return [json.loads(line) for line in lines]


def test_ps_format_json_is_one_object_per_line(cli: Any, web: str) -> None:
    code, out, err = cli("ps", "-a", "--format", "json")
    assert (code, err) == (0, "")
    [row] = json_lines(out)
    assert row["ID"] == web[:12] and row["Names"] == "web" and row["State"] == "created"
    assert row["Labels"] == "tier=front" and row["Image"] == "busybox"
    assert list(row) == sorted(row)  # keys in order, as Docker's
    assert "Label" not in row  # a method, not data


def test_ps_table_templates_have_headers_and_methods(cli: Any, web: str) -> None:
    code, out, _ = cli("ps", "-a", "--format", 'table {{.Names}}\\t{{.Label "tier"}}')
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["NAMES", "LABEL"] and row.split() == ["web", "front"]
    assert cli("ps", "-a", "--format", "{{.Names}}:{{.State}}")[1] == "web:created\n"
    default = cli("ps", "-a")[1]
    assert cli("ps", "-a", "--format", "table")[1] == default


def test_a_bad_format_is_go_s_error_with_docker_s_code(cli: Any, web: str) -> None:
    code, out, err = cli("ps", "-a", "--format", "{{.Names")
    assert (code, out) == (64, "")
    assert err == "shellctr: template parsing error: template: :1: unclosed action\n"
    code, out, err = cli("inspect", "-f", "{{.Foo", "web")
    assert (code, out) == (64, "")  # the template itself printed with 0 no more
    code, out, err = cli("ps", "-a", "--format", "{{.Nope}}")
    assert (code, out) == (1, "")
    assert "can't evaluate field Nope" in err


def test_inspect_format_json_and_type(cli: Any, web: str) -> None:
    code, out, _ = cli("inspect", "-f", "json", "web")
    [record] = json_lines(out)
    assert record["Id"] == web and record["Name"] == "/web"
    assert cli("inspect", "--type", "image", "-f", "{{.Id}}", "busybox")[1] == \
        f"sha256:{IMAGE_ID}\n"
    code, out, err = cli("inspect", "--type", "image", "web")
    assert (code, out) == (1, "[]\n") and err == "shellctr: no such image: web\n"
    code, out, err = cli("inspect", "--type", "container", "busybox")
    assert code == 1 and err == "shellctr: no such container: busybox\n"
    code, out, _ = cli("inspect", "-s", "-f", "{{.SizeRw}} {{.SizeRootFs}}", "web")
    assert (code, out) == (0, "0 1234\n")


def test_images_and_history_formats(cli: Any, layout: Layout) -> None:
    parent = install_image(layout)
    child_id = "cd" * 32
    install_image(layout, image_model(
        id=child_id, repo_tags=["app:1"], layers=[LAYER, "ef" * 32], layer_sizes=[1234, 10],
        history=[{"created": T0, "created_by": "import"},
                 {"created": T0, "created_by": "RUN make"}]))
    rows = json_lines(cli("images", "--format", "json")[1])
    assert {(row["Repository"], row["Tag"]) for row in rows} == {("busybox", "latest"),
                                                                 ("app", "1")}
    assert cli("images", "--format", "{{.Repository}}:{{.Tag}}", "app")[1] == "app:1\n"
    # the row of the layer below is the local parent's, not <missing>
    code, out, _ = cli("history", "--format", "{{.ID}} {{.CreatedBy}}", "app:1")
    assert code == 0 and out == f"{child_id[:12]} RUN make\n{parent.id[:12]} import\n"
    [top, bottom] = json_lines(cli("history", "--format", "json", "app:1")[1])
    assert (top["ID"], bottom["ID"], top["Size"]) == (child_id[:12], parent.id[:12], "10B")
    raw = cli("history", "-H=false", "--format", "{{.CreatedSince}} {{.Size}}", "app:1")[1]
    assert raw == "2024-05-01T12:00:00Z 10\n2024-05-01T12:00:00Z 1234\n"
    header = cli("history", "app:1")[1].splitlines()[0]
    assert re.split(r"\s{2,}", header) == ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]


def test_volume_ls_formats_and_name_filter(cli: Any) -> None:
    for name in ("data-one", "data-two", "cache"):
        assert cli("volume", "create", "-l", f"n={name}", name)[0] == 0
    rows = json_lines(cli("volume", "ls", "--format", "json")[1])
    assert [row["Name"] for row in rows] == ["cache", "data-one", "data-two"]
    assert rows[0]["Driver"] == "local" and rows[0]["Labels"] == "n=cache"
    assert cli("volume", "ls", "-q", "--filter", "name=data")[1] == "data-one\ndata-two\n"
    assert cli("volume", "ls", "-q", "--filter", "name=^c")[1] == "cache\n"
    code, out, _ = cli("volume", "ls", "--format", 'table {{.Name}}\\t{{.Label "n"}}')
    assert code == 0 and out.splitlines()[0].split() == ["VOLUME", "NAME", "LABEL"]


def test_version_info_and_df(cli: Any, web: str) -> None:
    code, out, _ = cli("version", "--format", "{{.Client.Version}}|{{.Server.ApiVersion}}")
    assert code == 0 and re.fullmatch(r"\d+\.\d+\.\d+\|1\.\d+\n", out)
    [record] = json_lines(cli("version", "--format", "json")[1])
    assert set(record) == {"Client", "Server"}
    assert record["Server"]["Components"][0]["Name"] == "Engine"
    assert "Client:" in cli("version")[1] and "Server:" in cli("version")[1]
    code, out, _ = cli("info", "--format", "{{.Containers}} {{.ContainersStopped}} "
                       "{{.Images}} {{.Driver}}")
    assert (code, out) == (0, "1 1 1 overlay2\n")
    [info] = json_lines(cli("system", "info", "--format", "{{json .}}")[1])
    assert info["CgroupDriver"] == "cgroupfs" and info["NCPU"] >= 1
    assert info["OSType"] == "linux" and info["ClientInfo"]["Version"]
    text = cli("info")[1]
    assert " Containers: 1\n  Running: 0\n  Paused: 0\n  Stopped: 1\n Images: 1\n" in text
    rows = json_lines(cli("system", "df", "--format", "json")[1])
    assert [row["Type"] for row in rows] == ["Images", "Containers", "Local Volumes",
                                             "Build Cache"]
    assert (rows[0]["TotalCount"], rows[0]["Active"], rows[0]["Size"]) == ("1", "1", "1.23kB")
    assert rows[0]["Reclaimable"] == "0B (0%)"
    header = cli("system", "df")[1].splitlines()[0]
    assert header.split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    verbose = cli("system", "df", "-v")[1]
    assert "Images space usage:" in verbose and "\nweb\n" not in verbose
    assert re.search(r"\n\w{12}\s+busybox\s+\"sleep 9\"\s+0\s+0B\s+.*created\s+web\n", verbose)


def test_container_group_and_prune(cli: Any, web: str) -> None:
    assert cli("container", "ls", "-a", "-q") == (0, web[:12] + "\n", "")
    assert cli("container", "list", "-aq")[1] == cli("container", "ps", "-aq")[1]
    assert cli("container", "inspect", "-f", "{{.Name}}", "web")[1] == "/web\n"
    assert cli("container", "wait", "web") == (0, "0\n", "")  # created: at once
    code, out, _ = cli("container", "prune", "-f", "--filter", "until=2000-01-01T00:00:00Z")
    assert (code, out) == (0, "Total reclaimed space: 0B\n")  # web is younger
    code, out, _ = cli("container", "prune", "-f")
    assert (code, out) == (0, f"Deleted Containers:\n{web}\n\nTotal reclaimed space: 0B\n")
    assert cli("container", "ls", "-aq") == (0, "", "")
    code, _, err = cli("container", "rm", "web")
    assert (code, err) == (1, "shellctr: no such container: web\n")
