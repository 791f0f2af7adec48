"""gotemplate: the part of Go's text/template that `inspect -f` and `ps --format` take."""

from __future__ import annotations

import re
from typing import Any

import pytest

from shellctr.cli.gotemplate import render, table_format
from shellctr.core.errors import ShellctrError

DATA: dict[str, Any] = {
    "Id": "0123abcd",
    "Name": "/web",
    "RestartCount": 0,
    "Args": [],
    "State": {"Status": "running", "Running": True, "Paused": False, "Pid": 4242},
    "Config": {
        "Env": ["PATH=/bin", "HOSTNAME=web"],
        "Cmd": None,
        "Labels": {"tier": "front", "app": "shop"},  # not in key order
        "Entrypoint": ["/init", "--serve"],
    },
}


@pytest.mark.parametrize(("template", "expected"), [
    ("{{.Name}}", "/web"),
    ("{{ .State.Pid }}", "4242"),  # spaces inside the action
    ("{{- .Name -}}", "/web"),
    ("id={{.Id}} pid={{.State.Pid}}\n", "id=0123abcd pid=4242\n"),  # text kept verbatim
    ("no actions at all", "no actions at all"),
    ("{{.RestartCount}}", "0"),
    ("{{.State.Running}} {{.State.Paused}}", "true false"),  # Go's booleans
    ("{{json .Config.Env}}", '["PATH=/bin","HOSTNAME=web"]'),  # compact, as Go's json
    ("{{json .State.Pid}}", "4242"),
    ("{{json .Config.Cmd}}", "null"),
    ("{{json .Name}}", '"/web"'),
    ('{{index .Config.Labels "app"}}', "shop"),
    ("{{index .Config.Env 1}}", "HOSTNAME=web"),
    ("{{index .Config.Entrypoint -1}}", "--serve"),
    ('{{join .Config.Env ","}}', "PATH=/bin,HOSTNAME=web"),
    ('{{join .Config.Entrypoint " "}}', "/init --serve"),
    ("{{len .Config.Env}}", "2"),
    ("{{len .Config.Labels}}", "2"),
    ("{{len .Args}}", "0"),
    ("{{upper .State.Status}} {{lower .Name}} {{title .State.Status}}", "RUNNING /web Running"),
    ("{{println .Name .State.Pid}}", "/web 4242\n"),
    ("{{range .Config.Env}}[{{.}}]{{end}}", "[PATH=/bin][HOSTNAME=web]"),
    ("{{range .Args}}x{{else}}none{{end}}", "none"),
    ("{{range .Config.Entrypoint}}{{.}};{{end}}", "/init;--serve;"),
    ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
    ("{{if .State.Paused}}paused{{else}}not paused{{end}}", "not paused"),
    ("{{if .Args}}args{{end}}.", "."),  # an empty list is false
    ("{{if .Config.Cmd}}cmd{{else}}no cmd{{end}}", "no cmd"),  # None is false
    ("{{if .RestartCount}}restarted{{else}}never{{end}}", "never"),  # 0 is false
    ("{{if .State.Running}}{{range .Config.Env}}{{.}} {{end}}{{end}}", "PATH=/bin HOSTNAME=web "),
])
def test_render(template: str, expected: str) -> None:
    assert render(template, DATA) == expected


@pytest.mark.parametrize(("value", "shown"), [
    ({"b": "2", "a": "1"}, "map[a:1 b:2]"),  # Go prints a map with its keys sorted
    ({}, "map[]"),
    ({"n": {"y": [1, 2], "x": None}}, "map[n:map[x:<no value> y:[1 2]]]"),
    (["a", "b c"], "[a b c]"),  # a list: elements with spaces between, no quotes
    ([], "[]"),
    ([True, None], "[true <no value>]"),
    (None, "<no value>"),
    (False, "false"),
    (0, "0"),
    ("", ""),
])
def test_values_print_as_go_prints_them(value: object, shown: str) -> None:
    assert render("{{.V}}", {"V": value}) == shown


def test_dot_is_the_whole_value_and_range_rebinds_it() -> None:
    assert render("{{.}}", "plain") == "plain"
    assert render("{{range .}}<{{.}}>{{end}}", ["a", "b"]) == "<a><b>"
    assert render("{{range .}}{{.N}},{{end}}", [{"N": 1}, {"N": 2}]) == "1,2,"


def test_range_over_a_map_gives_its_values_in_key_order() -> None:
    # Go ranges over a map's elements in sorted key order, as it prints them
    assert render("{{range .Config.Labels}}{{.}} {{end}}", DATA) == "shop front "


@pytest.mark.parametrize(("template", "message"), [
    ("{{.Nope}}", "no field 'Nope' in .Nope"),
    ("{{.State.Nope}}", "no field 'Nope' in .State.Nope"),
    ("{{.Name.Deeper}}", "no field 'Deeper' in .Name.Deeper"),  # a string has no fields
    ("{{json .Nope}}", "no field 'Nope'"),  # in an argument too
    ("{{if .Nope}}x{{end}}", "no field 'Nope'"),
    ("{{if .State.Running}}up", "{{if}} without {{end}}"),
    ("{{range .Args}}x{{else}}y", "{{range}} without {{end}}"),
    ("{{range .Args}}", "{{range}} without {{end}}"),
    ("{{end}}", "unexpected {{end}}"),
    ("a{{else}}b", "unexpected {{else}}"),
    ("{{}}", "empty action {{}}"),
    ('{{index .Config.Labels "nope"}}', "index 'nope' out of range"),
    ("{{index .Config.Env 5}}", "index 5 out of range"),
    ("{{len}}", "wrong arguments to len"),
    ("{{json}}", "wrong arguments to json"),
    ("{{len .State.Pid}}", "wrong arguments to len"),  # a number has no length
    ('{{join .Config.Env}}', "wrong arguments to join"),
    ("{{nosuch .Name}}", "'nosuch' is not a function"),
    ('{{index .Config.Labels "app}}', "No closing quotation"),
])
def test_template_errors_are_clear(template: str, message: str) -> None:
    with pytest.raises(ShellctrError, match=re.escape(message)) as info:
        render(template, DATA)
    assert str(info.value).startswith("template: ")
    assert info.value.hint == f"in {template!r}"


def test_an_error_renders_nothing() -> None:
    with pytest.raises(ShellctrError):
        render("before {{.Nope}} after", DATA)


# -- table_format ----------------------------------------------------------------------
@pytest.mark.parametrize(("spec", "expected"), [
    ("table {{.ID}}\\t{{.Names}}", (True, "{{.ID}}\t{{.Names}}")),  # Docker's \t escape
    ("{{.ID}}\\t{{.Image}}", (False, "{{.ID}}\t{{.Image}}")),
    ("{{.Names}}\\n", (False, "{{.Names}}\n")),  # and \n
    ("table   {{.ID}}", (True, "{{.ID}}")),  # the blanks after `table` go
    ("{{.ID}}\t{{.Names}}", (False, "{{.ID}}\t{{.Names}}")),  # a real tab stays a tab
    ("table", (True, "")),
    ("{{.Label \"table\"}}", (False, '{{.Label "table"}}')),  # `table` only as a prefix
])
def test_table_format(spec: str, expected: tuple[bool, str]) -> None:
    assert table_format(spec) == expected
