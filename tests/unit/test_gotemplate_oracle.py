"""gotemplate against Go itself: the static `docker` CLI evaluates `version --format`
templates on its own client data without a daemon, so each template here must give what
Go's text/template (and Docker's functions) give, to the byte, and each bad one Go's parse
error."""

from __future__ import annotations

import functools
import shutil
import subprocess

import pytest

from shellctr.cli.gotemplate import Struct, TemplateParseError, render
from shellctr.core.errors import ShellctrError

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
pytestmark = pytest.mark.skipif(not shutil.which(DOCKER), reason="no docker CLI to compare with")


@functools.cache
def client_data() -> Struct:
    """`docker version`'s template data, as the CLI builds it with no daemon."""
    out = subprocess.run([DOCKER, "version", "--format", "{{json .Client}}"],
                         capture_output=True, text=True, check=False).stdout
    import json

    client = Struct(Platform=None)  # a nil pointer Go prints as <nil>; JSON omits it
    client.update(json.loads(out))
    return Struct(Client=client, Server=None)


CASES = [
    '{{.Client.Version}}',
    '{{(index .Client.Version)}}',
    '{{range $i, $e := split .Client.Version "."}}{{$i}}={{$e}} {{end}}',
    '{{printf "%5.2f|%-6s|%q|%v|%d|%x" 3.14159 "ab" "q" .Client true 42 255}}',
    '{{nofunc 1}}',
    '{{if}}',
    '{{.Client.Version | len}}',
    '{{json .Server}}',
    '{{.Server}}',
    '{{eq 1 2 3 1}}',
    '{{slice "abcdef" 1 3}}',
    '{{html "<a&b>"}} {{js "a\'b\\"c<"}} {{urlquery "a b&c"}}',
    '{{pad "x" 2 3}}|{{truncate "abcdef" 3}}|{{title "hello world"}}',
    '{{print 1 2 "a" "b" 3}}',
    '{{println 1 "a"}}',
    '{{$x := 1}}{{$x = 2}}{{$x}}',
    '{{index "abc" 1}}',
    '{{define "x"}}X{{.}}{{end}}{{template "x" 1}}',
    '{{block "y" .Client.Os}}[{{.}}]{{end}}',
    '{{with .Server}}s{{else with .Client}}{{.Os}}{{end}}',
    '{{range 3}}{{.}}{{end}}',
    '{{break}}',
    '{{.Foo',
    '{{.Client}}',
    '{{ .Client.Os -}}   x  {{- .Client.Arch }}',
    'a {{/* comment */}} b {{- /* c2 */ -}} c',
    '{{if eq .Client.Os "linux"}}L{{else if eq .Client.Os "darwin"}}D{{else}}O{{end}}',
    '{{if and .Client (not .Server)}}yes{{end}}',
    '{{or .Server "dflt"}} {{and 1 0 2}} {{or 0 "" 3}}',
    '{{lt 1 2}} {{le 2 2}} {{gt "b" "a"}} {{ge 1 2}} {{ne 1 2}}',
    '{{len (split .Client.Version ".")}}',
    '{{join (split .Client.Version ".") "-"}}',
    '{{upper .Client.Os | printf "%s!"}}',
    '{{.Client.Version | printf "%s-%s" "v"}}',
    '{{$v := .Client.Version}}{{with $v}}{{.}}{{end}}{{$}}',
    '{{range $i, $x := split "a,b,c" ","}}{{if eq $i 1}}{{continue}}{{end}}{{$x}}{{end}}',
    '{{range $i, $x := split "a,b,c" ","}}{{if eq $i 1}}{{break}}{{end}}{{$x}}{{end}}',
    '{{range split "" ","}}[{{.}}]{{else}}none{{end}}',
    '{{printf "%T %T %T %T" 1 "s" 1.5 true}}',
    '{{printf "%d %s"}}',
    '{{printf "%!"}}',
    '{{printf "%v %v" (split "a b" " ") 3}}',
    '{{printf "%s" 3}}',
    '{{printf "%q" (split "a b" " ")}}',
    '{{printf "%6.2f|%-8.3e|%+d|% d|%x|%#x|%#o|%b" 2.5 1234.5678 5 5 "Az" 255 8 5}}',
    '{{len "héllo"}}',
    '{{ if .Client }}{{ end',
    '{{ $x }}',
    '{{ else }}',
    '{{ end }}',
    '{{"a" | "b"}}',
    '{{define "a"}}A{{end}}{{define "a"}}B{{end}}{{template "a"}}',
    '{{ ( ) }}',
    '{{ (1 }}',
    '{{ 1) }}',
    '{{"unterminated}}',
    '{{ 1x }}',
    '{{ & }}',
    '{{printf "%s %d" "x" 3 4 5}}',
    '{{printf "%05.1f|%-5s|%5s|%.2s|%c|%U" 3.14159 "ab" "ab" "abc" 0x4E16 0x4E16}}',
    '{{printf "%v" 1e21}} {{printf "%g" 0.000012345}} {{printf "%e" 0.0}} {{printf "%v" 2.5e-7}}',
    '{{printf "%*d|%-*d|%*d|%.*s" 5 42 4 7 "x" 3 2 "abcdef"}}',
    '{{$a, $b := 1}}',
    '{{range $a, $b, $c := 1}}{{end}}',
    '{{with $x := .Client}}{{$x.Os}}{{end}}',
    '{{if $x := .Client.Os}}{{$x}}{{end}}{{$x}}',
    '{{ .Client.Os }}{{- "\\n" -}}',
    '{{"a"}}{{- 3}}',
    '{{3 -}}x',
    '{{-3}}',
    '{{slice (split "a b c d" " ") 1 3}} {{slice "abc" 1}} {{slice "abc"}}',
    '{{not 0}} {{not "x"}} {{not .Server}}',
    '{{eq .Server nil}}',
    '{{json "a<b>&"}} {{json 1.5}} {{json (split "x y" " ")}}',
    '{{html 1 2}} {{js 3}} {{urlquery "é/?"}}',
    '{{title "hello-world foo_bar"}} {{lower "ABC"}} {{upper "abc"}}',
    '{{truncate "abc" 5}} {{pad "" 0 0}}x',
]


@pytest.mark.parametrize("template", CASES)
def test_template_renders_as_go_does(template: str) -> None:
    data = client_data()
    go = subprocess.run([DOCKER, "version", "--format", template], capture_output=True,
                        text=True, check=False)
    if go.returncode == 64:  # Go refused to parse it: the same words (its name is "version")
        with pytest.raises(TemplateParseError) as info:
            render(template, data)
        expected = next(line for line in go.stderr.splitlines() if "template" in line)
        assert str(info.value) == expected.replace("template: version:", "template: :")
        return
    assert render(template, data) + "\n" == go.stdout


@pytest.mark.parametrize("template", [
    "{{nil}}", "{{eq 1 1.0}}", "{{lt 1 2.0}}", "{{.Nope}}", "{{.Client.Nope}}",
    "{{index .Client 1}}", "{{len 3}}", "{{range $i, $e := .Client}}{{end}}",
    "{{.Server.Version}}", '{{range $i, $c := "ab"}}{{end}}', "{{upper 3}}",
])
def test_what_go_cannot_execute_is_an_error(template: str) -> None:
    go = subprocess.run([DOCKER, "version", "--format", "x" + template + "y"],
                        capture_output=True, text=True, check=False)
    assert "y" not in go.stdout  # Go stopped at the action: an execution error
    with pytest.raises(ShellctrError):
        render(template, client_data())
