"""gotemplate: the part of Go's text/template that `inspect -f` and `ps --format` take."""

from __future__ import annotations

import re
from typing import Any

import pytest

from shellctr.cli.gotemplate import Map, TemplateParseError, render, table_format
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
    ("{{index .Config.Entrypoint 1}}", "--serve"),
    ('{{(index .Config.Labels "app")}}', "shop"),  # parentheses
    ('{{(index .Config.Labels "app") | upper}}', "SHOP"),
    ("{{$n := .Name}}{{$n}}", "/web"),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", "app=shop;tier=front;"),
    ("{{with .State}}{{.Status}}{{end}}", "running"),
    ("{{with .Config.Cmd}}x{{else with .Name}}{{.}}{{end}}", "/web"),
    ("{{if eq .State.Status \"exited\"}}e{{else if .State.Running}}r{{end}}", "r"),
    ("{{range .Args}}{{else}}empty{{end}}", "empty"),
    ("a  {{- .Name -}}  b", "a/webb"),
    ("{{printf \"%s:%d\" .Name .State.Pid}}", "/web:4242"),
    ("{{slice .Name 1}}", "web"),
    ('{{and .State.Running "yes"}} {{or .Config.Cmd "none"}}', "yes none"),
    ("{{.State.Status | len}}", "7"),
    ("{{/* a comment */}}x", "x"),
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
    ({"n": {"y": [1, 2], "x": None}}, "map[n:map[x:<nil> y:[1 2]]]"),
    ({"B": 1, "A": "x"}, "{1 x}"),  # a struct: its fields in order
    (["a", "b c"], "[a b c]"),  # a list: elements with spaces between, no quotes
    ([], "[]"),
    ([True, None], "[true <nil>]"),
    (None, "<nil>"),  # a null is Go's nil
    (1e6, "1e+06"),  # Go's %v of a float64
    (2.5, "2.5"),
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
    # execution errors: Go's words, with the line:column of the node and the node itself
    ("{{.Nope}}", 'template: :1:2: executing "" at <.Nope>: can\'t evaluate field Nope in '
                  "type struct"),
    ("{{.State.Nope}}", 'template: :1:2: executing "" at <.State.Nope>: can\'t evaluate '
                        "field Nope in type struct"),
    ("{{.Name.Deeper}}", 'template: :1:2: executing "" at <.Name.Deeper>: can\'t evaluate '
                         "field Deeper in type string"),
    ("{{json .Nope}}", 'template: :1:7: executing "" at <.Nope>: can\'t evaluate field Nope'),
    ("line one\n  {{if .Nope}}x{{end}}", 'template: :2:7: executing "" at <.Nope>'),
    ("{{index .Config.Env 5}}", 'template: :1:2: executing "" at <index .Config.Env 5>: '
                                "error calling index: index out of range: 5"),
    ("{{len}}", "wrong number of args for len: want 1 got 0"),
    ("{{len .State.Pid}}", "error calling len: len of type int"),
    ("{{join .Config.Env}}", "wrong number of args for join: want 2 got 1"),
    ("{{upper .State.Pid}}", "wrong type for value; expected string; got int"),
    ("{{lt 1 2.5}}", "error calling lt: incompatible types for comparison"),
    ("{{eq .Config.Env 1}}", "error calling eq: invalid type for comparison"),
    ("{{.Name 1}}", "Name has arguments but cannot be invoked as function"),
    ("{{range .State}}{{end}}", "range can't iterate over {running true false 4242}"),
    ('{{template "nope"}}', 'no such template "nope"'),
    ("{{.Config.Cmd.X}}", "nil pointer evaluating interface {}.X"),
    ("{{1 2}}", "can't give argument to non-function 1"),
    ("{{(.Name).X.Y}}", "can't evaluate field X in type string"),
])
def test_execution_errors_are_go_s(template: str, message: str) -> None:
    with pytest.raises(ShellctrError, match=re.escape(message)) as info:
        render(template, DATA)
    assert str(info.value).startswith("template: ")
    assert info.value.exit_code == 125  # an engine error: the CLI makes it Docker's 1


@pytest.mark.parametrize(("template", "message"), [
    ("{{if .State.Running}}up", "template: :1: unexpected EOF"),
    ("{{range .Args}}x{{else}}y", "template: :1: unexpected EOF"),
    ("{{end}}", "template: :1: unexpected {{end}}"),
    ("a{{else}}b", "template: :1: unexpected {{else}}"),
    ("{{}}", "template: :1: missing value for command"),
    ("{{nosuch .Name}}", 'template: :1: function "nosuch" not defined'),
    ('{{index .Config.Labels "app}}', "template: :1: unterminated quoted string"),
    ("{{.Foo", "template: :1: unclosed action"),
    ("a\nb\n{{.Foo", "template: :3: unclosed action"),
    ("{{$x}}", 'template: :1: undefined variable "$x"'),
    ("{{if}}{{end}}", "template: :1: missing value for if"),
    ("{{break}}", "template: :1: {{break}} outside {{range}}"),
    ("{{(1}}", "template: :1: unclosed left paren"),
    ("{{1)}}", "template: :1: unexpected right paren"),
    ("{{1x}}", 'template: :1: bad number syntax: "1x"'),
    ("{{.A | 1}}", "template: :1: non executable command in pipeline stage 2"),
    ("{{/* open", "template: :1: unclosed comment"),
])
def test_parse_errors_are_go_s_with_docker_s_exit_code(template: str, message: str) -> None:
    with pytest.raises(TemplateParseError) as info:
        render(template, DATA)
    assert str(info.value) == "template parsing error: " + message
    assert info.value.exit_code == 64  # the Docker CLI's code for a bad template


def test_an_error_renders_nothing() -> None:
    with pytest.raises(ShellctrError):
        render("before {{.Nope}} after", DATA)


def test_user_named_keys_of_docker_s_maps_are_keys_not_fields() -> None:
    record = {"NetworkSettings": {"Networks": {"Front": {"IPAddress": "10.0.0.2"}}},
              "Config": {"Labels": {"Maintainer": "me"}}}
    assert render("{{range $n, $c := .NetworkSettings.Networks}}{{$n}}={{$c.IPAddress}}"
                  "{{end}}", record) == "Front=10.0.0.2"
    assert render('{{(index .NetworkSettings.Networks "Front").IPAddress}}', record) == \
        "10.0.0.2"
    assert render("{{.Config.Labels.Other}}", record) == "<no value>"  # a map: no error


def test_a_map_s_missing_key_is_no_value_and_a_method_takes_arguments() -> None:
    row = {"Labels": {"a": "1"}, "Label": lambda name: {"a": "1"}.get(name, "")}
    assert render("{{.Labels.nope}}", row) == "<no value>"
    assert render('{{.Label "a"}}|{{.Label "b"}}', row) == "1|"
    assert render('{{index .Labels "b"}}.', row) == "."  # a string map's zero value
    assert render("{{.}}", Map(b=2, a=1)) == "map[a:1 b:2]"


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
