"""The read verbs' fast parser (cli/flags.py) against argparse (cli/parser.py), both made
of the same descriptions: for every command line the fast one takes, argparse makes the
same request; what it does not take is argparse's to parse or to refuse."""

from __future__ import annotations

import contextlib
import importlib
import io
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shellctr.cli.common import FlagError
from shellctr.cli.flags import FAST_VERBS, GLOBAL_FLAGS, Verb, parse_fast
from shellctr.cli.parser import Parser, build_parser


def describe(module: str, key: str) -> Verb:
    verbs: dict[str, Verb] = importlib.import_module(f"shellctr.cli.{module}").read_verbs()
    return verbs[key]


def fast_request(argv: list[str]) -> dict[str, object] | None:
    parsed = parse_fast(argv, describe)
    return None if parsed is None else dict(vars(parsed))


def slow_request(argv: list[str]) -> dict[str, object] | str:
    """What argparse makes of `argv` (`volume`'s verbs: the request its own parser makes,
    with the global flags), or the error it words."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            parsed = build_parser(argv).parse_args(argv)
            request = dict(vars(parsed))
            if request["verb"] == "volume" and not request["help"]:
                from shellctr.cli.volumes import register_volume_verbs

                parser = Parser(prog="shellctr volume")
                register_volume_verbs(parser.add_subparsers(dest="volume_verb", required=True))
                for key in ("help", "args", "func"):
                    request.pop(key)
                request.update(vars(parser.parse_args(request.pop("args", None)
                                                      or parsed.args)))
    except FlagError as err:
        return f"error: {err}"
    except SystemExit as err:  # --help, --version
        return f"exit {err.code}"
    return request


def flag_words(verb: Verb) -> st.SearchStrategy[list[str]]:
    """One flag of `verb` as a user may spell it, or a word it does not know."""
    values = st.sampled_from(["", "x", "5", "-1", "0", "a=b", "json", "container", "=",
                              "table {{.ID}}", "all", "web", "-x", "--"])
    choices = []
    for flag in verb.flags:
        for name in flag.names:
            if flag.kind == "bool":
                choices.append(st.just([name]))
                choices.append(st.sampled_from(["true", "false", "x"]).map(
                    lambda v, name=name: [f"{name}={v}"]))
            else:
                choices.append(values.map(lambda v, name=name: [name, v]))
                choices.append(values.map(lambda v, name=name: [f"{name}={v}"]))
                choices.append(st.just([name]))  # its value missing
    shorts = [name[1] for flag in verb.flags if flag.kind == "bool"
              for name in flag.names if not name.startswith("--")]
    if len(shorts) > 1:
        choices.append(st.lists(st.sampled_from(shorts), min_size=2, max_size=3).map(
            lambda letters: ["-" + "".join(letters)]))
    choices.append(st.sampled_from(["--", "-", "--help", "-h", "--bogus", "-Z", "-aZ"]).map(
        lambda word: [word]))
    choices.append(st.sampled_from(["web", "a", "b", "80/tcp", ""]).map(lambda w: [w]))
    return st.one_of(choices)


GLOBAL_WORDS = st.lists(st.sampled_from([
    ["--root", "/tmp/r"], ["--root=/tmp/s"], ["--runroot", "/tmp/run"], ["--trace"],
    ["--debug"], ["--dry-run"], ["--trace=true"], ["-v"], ["--root"], ["--bogus"],
]), max_size=3)


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    words = draw(st.sampled_from(sorted(FAST_VERBS)))
    module, key, _ = FAST_VERBS[words]
    verb = describe(module, key)
    argv = [word for part in draw(GLOBAL_WORDS) for word in part] + list(words)
    for part in draw(st.lists(flag_words(verb), max_size=6)):
        argv += part
    return argv


@settings(max_examples=1500, deadline=None)
@given(command_lines())
def test_the_fast_parser_makes_argparses_request_or_hands_the_line_to_it(
        argv: list[str]) -> None:
    fast = fast_request(argv)
    if fast is not None:
        assert fast == slow_request(argv), argv


COMMON = [
    ["ps"], ["ps", "-a"], ["ps", "-q"], ["ps", "-aq"], ["ps", "-a", "--format", "json"],
    ["ps", "--format={{.ID}}", "-n", "3"], ["ps", "-f", "status=exited", "-f", "name=web"],
    ["ps", "--no-trunc", "--last", "2"], ["images"], ["images", "-q", "busybox"],
    ["images", "--format", "json"], ["inspect", "web"], ["inspect", "-f", "{{.Id}}", "a", "b"],
    ["inspect", "--type", "image", "busybox"], ["image", "inspect", "busybox"],
    ["port", "web"], ["port", "web", "80/tcp"], ["logs", "--tail", "1", "web"],
    ["logs", "-n", "5", "-t", "web"], ["network", "ls"], ["network", "ls", "-q"],
    ["volume", "ls"], ["volume", "ls", "--format", "{{.Name}}"], ["wait", "a", "b"],
    ["--root", "/tmp/r", "--runroot=/tmp/run", "--trace", "ps", "-a"],
    ["inspect", "a", "-f", "json", "b"],  # operands between flags, as cobra allows
]


@pytest.mark.parametrize("argv", COMMON, ids=" ".join)
def test_the_fast_parser_takes_the_common_command_lines(argv: list[str]) -> None:
    fast = fast_request(argv)
    assert fast is not None
    assert fast == slow_request(argv)


@pytest.mark.parametrize("argv", [
    ["ps", "--help"], ["ps", "-a=false"], ["ps", "--all=true"], ["ps", "-n", "x"],
    ["ps", "--", "x"], ["ps", "x"], ["port"], ["port", "a", "b", "c"], ["inspect"],
    ["inspect", "--type", "pod", "x"], ["logs", "--tail", "-1", "web"], ["images", "a", "b"],
    ["ps", "--bogus"], ["--root"], ["-v"], ["image", "ls"], ["network", "list"],
    ["volume", "--help"], ["container", "ls"],
], ids=" ".join)
def test_what_the_fast_parser_does_not_understand_goes_to_argparse(argv: list[str]) -> None:
    assert fast_request(argv) is None


def test_the_global_flags_are_one_description_for_both_parsers() -> None:
    parser = build_parser(["ps"])
    described = {name for flag in GLOBAL_FLAGS for name in flag.names}
    assert described <= set(parser._option_string_actions)


# -- what the read verbs print without json's Python half or `re` ---------------------------
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@given(JSON_VALUES)
def test_json_line_is_json_dumps_sorted_compact_unescaped(value: object) -> None:
    import json

    from shellctr.cli.textfmt import json_line

    assert json_line(value) == json.dumps(value, sort_keys=True, separators=(",", ":"),
                                          ensure_ascii=False)


CELLS = st.sampled_from(["{{.ID}}", "{{.Names}}", "{{.a_1}}", "{{.É}}", "{{ .ID }}", "{{.}}",
                         "{{.A.B}}", "x", "", "{{.ID}}x", "{{.ID}} ", "{{.Ünï}}"])


@given(st.lists(CELLS, min_size=1, max_size=4), st.sampled_from(["table ", "table", "", "x "]))
def test_plain_columns_are_the_fields_the_default_tables_name(
        cells: list[str], head: str) -> None:
    import re

    from shellctr.cli.textfmt import plain_columns

    spec = head + "\t".join(cells)
    columns = re.fullmatch(r"table ((?:{{\.\w+}}\t)*{{\.\w+}})", spec)
    assert plain_columns(spec) == (re.findall(r"\w+", columns[1]) if columns else None)


JSON_KEYS = st.text() | st.integers() | st.floats() | st.booleans() | st.none()
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(JSON_KEYS, inner, max_size=4),
    max_leaves=25)


@given(ANY_JSON)
def test_json_indented_is_json_dumps_indent_4(value: object) -> None:
    import json

    from shellctr.cli.textfmt import json_indented

    assert json_indented(value) == json.dumps(value, indent=4)


@given(ANY_JSON)
def test_json_line_unsorted_ascii_is_inspects_json_format(value: object) -> None:
    import json

    from shellctr.cli.textfmt import json_line

    assert json_line(value, sort_keys=False, ensure_ascii=True) == json.dumps(
        value, separators=(",", ":"))


@given(st.ip_addresses(v=4).map(str) | st.sampled_from(["1.2.3.4", "255.255.255.255"]))
def test_ipv4_number_is_ipaddress_int(address: str) -> None:
    from ipaddress import IPv4Address

    from shellctr.cli.textfmt import ipv4_number

    assert ipv4_number(address) == int(IPv4Address(address))


@pytest.mark.parametrize(("argv", "code", "out", "err"), [
    (["ps", "-a"], 0, "CONTAINER ID", ""),
    (["ps", "-a", "--format", "json"], 0, "", ""),
    (["inspect", "nosuch"], 1, "[]", "shellctr: no such object: nosuch\n"),
    (["ps", "--bogus"], 125, "", "shellctr: unknown flag: --bogus (see 'shellctr ps --help')\n"),
])
def test_bin_shellctr_ends_a_read_verb_with_its_code_and_all_its_output(
        tmp_path: Path, argv: list[str], code: int, out: str, err: str) -> None:
    """run() skips the interpreter's teardown after a read verb: nothing it printed is lost
    (stdout a pipe: block-buffered), and its exit code is main's."""
    from shellctr.core.layout import CHECKOUT

    done = subprocess.run([str(CHECKOUT / "bin" / "shellctr"), "--root", str(tmp_path / "r"),
                           "--runroot", str(tmp_path / "run"), *argv],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (code, err)
    assert done.stdout.startswith(out) and done.stdout.endswith("\n" if out else "")


@pytest.mark.parametrize(("argv", "collects"), [
    (["ps", "-a"], False), (["images"], False), (["network", "ls"], False),
    (["ps", "--all=true"], True),  # argparse's: not a read verb's fast path
    (["wait", "nosuch"], True), (["logs", "-f", "nosuch"], True),  # they may last
    (["volume", "create", "v"], True),
])
def test_only_a_short_read_runs_without_the_cyclic_collector(
        tmp_path: Path, argv: list[str], collects: bool) -> None:
    """run() turns the collector off before main; main turns it on again for the rest."""
    import gc

    from shellctr.cli.main import main

    gc.disable()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            main(["--root", str(tmp_path / "r"), "--runroot", str(tmp_path / "run"), *argv])
        assert gc.isenabled() is collects
    finally:
        gc.enable()
