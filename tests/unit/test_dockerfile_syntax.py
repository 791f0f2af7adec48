"""dockerfile_syntax: the line level of Docker's Dockerfile parser (directives, comments,
continuations, JSON/shell forms, flags, heredocs, line numbers)."""

from __future__ import annotations

import pytest

from shellctr.parts.dockerfile_line import Heredoc, Node, SyntaxProblem, extract_flags, parse_words
from shellctr.parts.dockerfile_syntax import parse_heredoc, parse_lines


def nodes(text: str) -> list[Node]:
    return parse_lines(text).nodes


def dump(text: str) -> list[tuple[str, tuple[str, ...]]]:
    return [(node.name, node.args) for node in nodes(text)]


# -- parser directives -------------------------------------------------------------------------


@pytest.mark.parametrize("header", [
    "# escape=`", "#escape=`", "# escape = `", "#\tescape=\t`", "# ESCAPE=`", "#  eScApE=`   ",
    "   # escape=`",
])
def test_escape_directive_forms(header: str) -> None:
    result = parse_lines(f"{header}\nFROM x\nRUN a `\n  b\n")
    assert result.escape == "`"
    assert result.nodes[1].args == ("a   b",)


def test_directives_are_recorded_and_stripped() -> None:
    result = parse_lines("# syntax=docker/dockerfile:1\n# check=skip=all\n# escape=\\\nFROM x\n")
    assert result.directives == {"syntax": "docker/dockerfile:1", "check": "skip=all",
                                 "escape": "\\"}
    assert [node.name for node in result.nodes] == ["from"]


@pytest.mark.parametrize("text", [
    "# comment\n# escape=`\nFROM x\n",
    "\n# escape=`\nFROM x\n",
    "FROM x\n# escape=`\n",
    "# unknown=1\n# escape=`\nFROM x\n",
    "# escape `\nFROM x\n",
])
def test_a_directive_after_anything_else_is_a_comment(text: str) -> None:
    assert parse_lines(text).escape == "\\"


def test_a_directive_given_twice_is_an_error_on_its_line() -> None:
    with pytest.raises(SyntaxProblem, match="only one escape parser directive") as caught:
        parse_lines("# escape=\\\n# escape=`\nFROM x\n")
    assert caught.value.line == 2


def test_invalid_escape_token_is_refused() -> None:
    with pytest.raises(SyntaxProblem, match="invalid escape token '!' does not match"):
        parse_lines("# escape=!\nFROM x\n")


def test_byte_order_mark_is_dropped_before_directives() -> None:
    assert parse_lines("\ufeff# escape=`\nFROM x\n").escape == "`"


# -- comments and continuations --------------------------------------------------------------


@pytest.mark.parametrize(("text", "args"), [
    ("RUN a \\\n  b\n", ("a   b",)),
    ("RUN a\\\nb\n", ("ab",)),
    ("RUN a \\   \nb\n", ("a b",)),
    ("RUN a \\\t\nb\n", ("a b",)),
    ("RUN a \\\n# comment\n  b\n", ("a   b",)),
    ("RUN a \\\n    # indented comment\n  b\n", ("a   b",)),
    ("RUN a \\\n\n   \n b\n", ("a  b",)),
    ("RUN a \\\n \\\n b\n", ("a   b",)),
    ("RUN a \\\n\\\n b\n", ("a  b",)),
    ("RUN at eof \\", ("at eof",)),
    ("RUN at eof \\\n", ("at eof",)),
    ("RUN a\\\\\nRUN b\n", ("a\\\\",)),
    ("RUN hello\\\n  world\\\n  good  \\\n  night\n", ("hello  world  good    night",)),
    ("RUN a \\\r\n  b\r\n", ("a   b",)),
])
def test_continuation_lines(text: str, args: tuple[str, ...]) -> None:
    assert nodes("FROM x\n" + text)[1].args == args


def test_comments_and_blank_lines_are_skipped_and_indented_instructions_read() -> None:
    assert dump("# c\n\n   # indented comment\nFROM x\n\n\t  RUN  a\n") == [
        ("from", ("x",)), ("run", ("a",))]


def test_a_hash_inside_an_instruction_is_not_a_comment() -> None:
    assert nodes("FROM x\nRUN echo # not a comment\n")[1].args == ("echo # not a comment",)


def test_empty_continuation_lines_give_a_warning() -> None:
    result = parse_lines("FROM x\nRUN a \\\n\n  b\nRUN c \\\n  d\n")
    assert result.warnings == ["Empty continuation line found in: RUN a   b"]


def test_backtick_continuation_leaves_backslashes_alone() -> None:
    result = parse_lines("# escape=`\nFROM x\nRUN dir c:\\ `\n  d:\\\nENV P c:\\go\n")
    assert [node.args for node in result.nodes[1:]] == [
        ("dir c:\\   d:\\",), ("P", "c:\\go", "")]


def test_line_numbers_span_continuations_and_heredocs() -> None:
    found = nodes("# top\n\nFROM x\nRUN a \\\n\n  b\nRUN <<EOF\nline\nEOF\nCMD c\n")
    assert [(node.line, node.end_line) for node in found] == [(3, 3), (4, 6), (7, 9), (10, 10)]


def test_a_too_long_line_is_an_error() -> None:
    with pytest.raises(SyntaxProblem, match="max allowed size of 65535") as caught:
        parse_lines("FROM x\nLABEL a=" + "b" * 70000 + "\n")
    assert caught.value.line == 2


# -- JSON and shell forms --------------------------------------------------------------------


@pytest.mark.parametrize(("rest", "args", "is_json"), [
    ("[]", (), True),
    ('[""]', ("",), True),
    ('["a"]', ("a",), True),
    ('["a","b"]', ("a", "b"), True),
    ('[ "a", "b" ]', ("a", "b"), True),
    ('[\t"a",\t"b"\t]', ("a", "b"), True),
    ('["\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0000 \\u2603"]', ('" \\ / \b \f \n \r \t \x00 ☃',),
     True),
    ("['a', 'b']", ("['a', 'b']",), False),
    ('["a", "b"', ('["a", "b"',), False),
    ('["a', ('["a',), False),
    ('["a"] extra', ('["a"] extra',), False),
    ('["a",]', ('["a",]',), False),
    ("[NaN]", ("[NaN]",), False),
    ('{"a": 1}', ('{"a": 1}',), False),
    ("echo [a]", ("echo [a]",), False),
    ('echo "hi"', ('echo "hi"',), False),
])
def test_json_or_shell_form(rest: str, args: tuple[str, ...], is_json: bool) -> None:
    node = nodes(f"FROM x\nCMD {rest}\n")[1]
    assert (node.args, node.json) == (args, is_json)


@pytest.mark.parametrize("rest", ["[1]", '["a", 1]', '["a", null]', '[["a"]]', "[true]"])
def test_json_array_of_non_strings_is_an_error(rest: str) -> None:
    with pytest.raises(SyntaxProblem, match="arrays must be comprised of strings only"):
        parse_lines(f"FROM x\nRUN {rest}\n")


def test_volume_and_copy_split_on_whitespace_in_shell_form() -> None:
    found = nodes('FROM x\nVOLUME /a  /b\nVOLUME ["/c", "/d e"]\nCOPY a\tb /c/\n')
    assert [(n.args, n.json) for n in found[1:]] == [
        (("/a", "/b"), False), (("/c", "/d e"), True), (("a", "b", "/c/"), False)]


def test_env_and_label_pairs_keep_quotes_for_later() -> None:
    found = nodes('FROM x\nENV a=1 b="x y" c=z\\ w\nENV name value with spaces\n'
                  "LABEL 'quoted key'=v\n")
    assert found[1].args == ("a", "1", "=", "b", '"x y"', "=", "c", "z\\ w", "=")
    assert found[2].args == ("name", "value with spaces", "")
    assert found[3].args == ("'quoted key'", "v", "=")


@pytest.mark.parametrize(("text", "message"), [
    ("ENV name", "ENV must have two arguments"),
    ("LABEL key", "LABEL must have two arguments"),
    ("ENV a=1 b", "can't find = in 'b'"),
])
def test_name_value_errors(text: str, message: str) -> None:
    with pytest.raises(SyntaxProblem, match=message):
        parse_lines("FROM x\n" + text + "\n")


def test_healthcheck_keeps_its_type_then_the_command() -> None:
    found = nodes('FROM x\nHEALTHCHECK NONE\nHEALTHCHECK --interval=5s CMD a b\n'
                  'HEALTHCHECK CMD ["c", "d"]\nHEALTHCHECK\n')
    assert [(n.flags, n.args, n.json) for n in found[1:]] == [
        ((), ("NONE",), False), (("--interval=5s",), ("CMD", "a b"), False),
        ((), ("CMD", "c", "d"), True), ((), (), False)]


def test_onbuild_holds_its_instruction() -> None:
    node = nodes("FROM x\nONBUILD RUN echo hi\n")[1]
    assert node.args == ("RUN", "echo hi")
    assert node.child is not None and node.child.name == "run"


# -- flags and words -------------------------------------------------------------------------


@pytest.mark.parametrize(("rest", "flags", "left"), [
    ("foo /tmp/", [], "foo /tmp/"),
    ("--user=me foo /tmp/", ["--user=me"], "foo /tmp/"),
    ("--a=1 --b foo", ["--a=1", "--b"], "foo"),
    ("--a=1 -- --not-a-flag x", ["--a=1"], " --not-a-flag x"),
    ("-- foo", [], " foo"),
    ("--label='a b' x", ["--label=a b"], "x"),
    ('--label="" x', ["--label="], "x"),
    ("--a=x\\ y z", ["--a=x y"], "z"),
    ("-notflag x", [], "-notflag x"),
    ("--only", ["--only"], ""),
    ("--", [], ""),
])
def test_extract_flags(rest: str, flags: list[str], left: str) -> None:
    assert extract_flags(rest, "\\") == (left, flags)


def test_flags_are_parsed_off_every_instruction() -> None:
    node = nodes("FROM x\nCOPY --from=a --chown=1:1 src dst\n")[1]
    assert node.flags == ("--from=a", "--chown=1:1")
    assert node.args == ("src", "dst")


@pytest.mark.parametrize(("rest", "words"), [
    ("foo", ["foo"]),
    ("foo bar", ["foo", "bar"]),
    ("foo\\ bar", ["foo\\ bar"]),
    ("foo=bar", ["foo=bar"]),
    ("foo bar 'abc xyz'", ["foo", "bar", "'abc xyz'"]),
    ('foo bar "abc xyz"', ["foo", "bar", '"abc xyz"']),
    ("àöû", ["àöû"]),
    ('föo bàr "âbc xÿz"', ["föo", "bàr", '"âbc xÿz"']),
    ('a="x \\" y" b', ['a="x \\" y"', "b"]),
    ("a='x \\' b", ["a='x \\'", "b"]),
    ('e=""', ['e=""']),
])
def test_parse_words_keeps_quotes(rest: str, words: list[str]) -> None:
    assert parse_words(rest, "\\") == words


# -- heredocs --------------------------------------------------------------------------------


@pytest.mark.parametrize(("word", "heredoc"), [
    ("<<EOF", Heredoc("EOF")),
    ("<<-EOF", Heredoc("EOF", chomp=True)),
    ('<<"EOF"', Heredoc("EOF", expand=False)),
    ("<<'EOF'", Heredoc("EOF", expand=False)),
    ("<<E'O'F", Heredoc("EOF", expand=False)),
    ("2<<EOF", Heredoc("EOF", fd=2)),
    ("<<", None),
    ("<<a b", None),
    ("cat", None),
    ("<<<x", None),
])
def test_parse_heredoc(word: str, heredoc: Heredoc | None) -> None:
    assert parse_heredoc(word) == heredoc


def test_run_heredoc_body_follows_the_line() -> None:
    node = nodes("FROM x\nRUN <<EOF\necho a\necho $b\nEOF\nCMD x\n")[1]
    assert node.args == ("<<EOF",)
    assert node.heredocs == (Heredoc("EOF", "echo a\necho $b\n"),)


def test_several_heredocs_on_one_line_are_read_in_order() -> None:
    node = nodes("FROM x\nRUN cat <<A && cat <<-'B'\none\nA\n\t\ttwo\n\tB\n")[1]
    assert node.heredocs == (Heredoc("A", "one\n"), Heredoc("B", "\t\ttwo\n", False, True))
    assert node.heredocs[1].data == "two\n"


def test_chomped_terminator_may_be_indented_with_tabs_only() -> None:
    node = nodes("FROM x\nRUN <<-EOF\n\tx\n  EOF\n\tEOF\n")[1]
    assert node.heredocs[0].content == "\tx\n  EOF\n"


def test_copy_heredoc_and_onbuild_heredoc() -> None:
    found = nodes("FROM x\nCOPY <<EOF /dest\nhello\nEOF\nONBUILD RUN <<EOF\nhi\nEOF\n")
    assert found[1].heredocs == (Heredoc("EOF", "hello\n"),)
    child = found[2].child
    assert child is not None and child.heredocs == (Heredoc("EOF", "hi\n"),)


def test_heredocs_only_in_run_copy_add_shell_form() -> None:
    found = nodes('FROM x\nCMD cat <<EOF\nRUN ["cat", "<<EOF"]\nLABEL a=<<EOF\n')
    assert [node.heredocs for node in found[1:]] == [(), (), ()]
    assert len(found) == 4


def test_unterminated_heredoc_is_an_error_from_its_instruction() -> None:
    with pytest.raises(SyntaxProblem, match="unterminated heredoc") as caught:
        parse_lines("FROM x\nRUN <<EOF\nno end\n")
    assert (caught.value.line, caught.value.end_line) == (2, 3)


def test_a_comment_inside_a_heredoc_is_content() -> None:
    node = nodes("FROM x\nRUN <<EOF\n# kept\n\nx \\\nEOF\n")[1]
    assert node.heredocs[0].content == "# kept\n\nx \\\n"
