"""dockerfile_words: Docker's word processing and `$VAR` substitution (the cases follow
Docker's documented rules and its lexer's behaviour, written as our own table)."""

from __future__ import annotations

import pytest

from shellctr.parts.dockerfile_words import (
    Lexer,
    SubstitutionError,
    expand,
    process_word,
    process_words,
)

ENV = {"HOME": "/root", "SHELL": "ash", "EMPTY": "", "GREETING": "hëllo wörld",
       "SPACED": "  a  b  ", "PATH": "/usr/bin:/bin", "FILE": "archive.tar.gz"}
ERROR = "error"


@pytest.mark.parametrize(("word", "expected"), [
    # plain words, quotes, escapes
    ("plain", "plain"),
    ("ke'e'p", "keep"),
    ("un'closed", ERROR),
    ("it\\'s", "it's"),
    ("two\\\\'x", ERROR),
    ("a\\tb", "atb"),
    ('"a\\tb"', "a\\tb"),
    ('"a\\\\tb"', "a\\tb"),
    ("'a\\tb'", "a\\tb"),
    ("trailing\\", "trailing"),
    ("trailing\\\\", "trailing\\"),
    ('"open', ERROR),
    ('"escaped end\\"', ERROR),
    ('"in\'side"', "in'side"),
    ("'single\\'", "single\\"),
    ("'lit\\\\eral'", "lit\\\\eral"),
    ('"\'\'"', "''"),
    ("'\"q\"'", '"q"'),
    ("ünï'cödé'", "ünïcödé"),
    # variables
    ("$HOME", "/root"),
    ("${HOME}", "/root"),
    ("x$HOME.y", "x/root.y"),
    ("x${HOME}y", "x/rooty"),
    ("$home", ""),
    ("$UNSET", ""),
    ("a${UNSET}b", "ab"),
    ("$", "$"),
    ("$.", "$."),
    ("a$.b", "a$.b"),
    ("\\$HOME", "$HOME"),
    ("\\\\$HOME", "\\/root"),
    ('"\\$HOME"', "$HOME"),
    ('"\\\\$HOME"', "\\/root"),
    ("'$HOME'", "$HOME"),
    ("'\\$HOME'", "\\$HOME"),
    ('"$HOME"', "/root"),
    ('"it\'s $HOME"', "it's /root"),
    ("\\${}", "${}"),
    ("x\\${}y", "x${}y"),
    ("${}", ERROR),
    ("x${}y", ERROR),
    ("${.}", ERROR),
    ("${{HOME}", ERROR),
    ("${HOME}}", "/root}"),
    ("${HOME", ERROR),
    ("${:}", ERROR),
    ("${:-x}", ERROR),
    ("$GREETING", "hëllo wörld"),
    # defaults and alternatives
    ("${UNSET:-dflt}", "dflt"),
    ("${HOME:-dflt}", "/root"),
    ("${EMPTY:-dflt}", "dflt"),
    ("${EMPTY-dflt}", ""),
    ("${UNSET-dflt}", "dflt"),
    ("${UNSET:-$HOME}", "/root"),
    ("${UNSET:-${ALSO:-deep}}", "deep"),
    ("${UNSET:-${HOME:-no}}", "/root"),
    ("${UNSET:-'a b'}", "a b"),
    ("${UNSET:-\\$HOME:}", "$HOME:"),
    ("${UNSET:-\\${HOME}z}", "${HOMEz}"),
    ("${UNSET:-x {y}", "x {y"),
    ("${UNSET:-x ${HOME}", ERROR),
    ("${UNSET:-x", ERROR),
    ("${HOME:+alt}", "alt"),
    ("${UNSET:+alt}", ""),
    ("${EMPTY:+alt}", ""),
    ("${EMPTY+alt}", "alt"),
    ("${HOME:+${SHELL}}", "ash"),
    ("${HOME:+${UNSET}}", ""),
    ("${HOME:+${HOME}:}", "/root:"),
    ("${HOME:=x}", ERROR),
    ("${HOME:x}", ERROR),
    ("${HOME*}", ERROR),
    # required
    ("${HOME?}", "/root"),
    ("${HOME:?}", "/root"),
    ("${EMPTY?}", ""),
    ("${EMPTY:?}", ERROR),
    ("${UNSET?}", ERROR),
    ("${UNSET:?}", ERROR),
    # positional and special parameters are never set
    ("$1", ""),
    ("${1}", ""),
    ("${1:-one}", "one"),
    ("${1:+one}", ""),
    ("$999x", "x"),
    ("$001x", "x"),
    ("${001:-d}x", "dx"),
    ("$@", ""),
    ("$@@@", "@@"),
    ("${@:-at}", "at"),
    ("$*", ""),
    ("$#", ""),
    ("${#:-n}", "n"),
    ("$?", ""),
    ("$-", ""),
    ("${-:-dash}", "dash"),
    ("$$", ""),
    ("$!", ""),
    ("$0", ""),
    ("${0:+z}", ""),
    # trimming and replacing
    ("${FILE#*.}", "tar.gz"),
    ("${FILE##*.}", "gz"),
    ("${FILE%.*}", "archive.tar"),
    ("${FILE%%.*}", "archive"),
    ("${FILE#nomatch}", "archive.tar.gz"),
    ("${FILE#a?c}", "hive.tar.gz"),
    ("${PATH/:/;}", "/usr/bin;/bin"),
    ("${PATH//\\//|}", "|usr|bin:|bin"),
    ("${PATH//bin/sbin}", "/usr/sbin:/sbin"),
    ("${UNSET//a/b}", ""),
    ("${FILE/*/X}", "X"),
    ("${FILE//*/X}", "X"),
    ("${FILE/r/$0}", "achive.tar.gz"),
    ("${FILE:#x}", ERROR),
    ("${FILE:%x}", ERROR),
    ("${FILE#\\q}", ERROR),
    ("${FILE/x", ERROR),
    ("${FILE/x/y", ERROR),
])
def test_process_word(word: str, expected: str) -> None:
    if expected == ERROR:
        with pytest.raises(SubstitutionError):
            process_word(word, ENV)
    else:
        assert process_word(word, ENV) == expected


@pytest.mark.parametrize(("word", "expected"), [
    ("hello", ["hello"]),
    ("a${UNSET}b", ["ab"]),
    ("x${SPACED}y", ["x", "a", "b", "y"]),
    ('x"${SPACED}"y', ["x  a  b  y"]),
    ('x "${SPACED}"y', ["x", "  a  b  y"]),
    ("${SPACED}", ["a", "b"]),
    ('"${SPACED}" z', ["  a  b  ", "z"]),
    ("one   two", ["one", "two"]),
    ("one\\ two", ["one two"]),
    ('one" two', ERROR),
    ('one\\" two', ['one"', "two"]),
    ('"a\\\\b"', ["a\\b"]),
    ('"a\\b"', ["a\\b"]),
    ("'a\\\\b'", ["a\\\\b"]),
    ("'$HOME'", ["$HOME"]),
    ('a "" b', ["a", "b"]),
    ("$GREETING!", ["hëllo", "wörld!"]),
    ("80 ${UNSET:-443 8080}", ["80", "443", "8080"]),
])
def test_process_words(word: str, expected: list[str] | str) -> None:
    if expected == ERROR:
        with pytest.raises(SubstitutionError):
            process_words(word, ENV)
    else:
        assert process_words(word, ENV) == expected


def test_backtick_escape_directive_changes_the_escape_character() -> None:
    assert process_word("C:\\path\\$HOME", ENV, escape="`") == "C:\\path\\/root"
    assert process_word("`$HOME", ENV, escape="`") == "$HOME"
    assert process_word('"a`"b"', ENV, escape="`") == 'a"b'
    assert process_words("a` b c", ENV, escape="`") == ["a b", "c"]


def test_required_variable_error_carries_the_message_expanded() -> None:
    env = {"VAR": "", "ARG": "x"}
    with pytest.raises(SubstitutionError, match="VAR: message herex"):
        process_word("${VAR:?message here$ARG}", env)
    with pytest.raises(SubstitutionError, match="VAR: is not allowed to be empty"):
        process_word("${VAR:?}", env)
    with pytest.raises(SubstitutionError, match="NOPE: is not allowed to be unset"):
        process_word("${NOPE?}", env)
    assert process_word("${VAR?message}", env) == ""


def test_errors_name_the_word() -> None:
    with pytest.raises(SubstitutionError,
                       match=r'failed to process "\$\{HOME": syntax error: missing \'}\''):
        process_word("${HOME", ENV)
    with pytest.raises(SubstitutionError, match="bad substitution"):
        process_word("${}", ENV)
    with pytest.raises(SubstitutionError, match=r"unsupported modifier \(:=\)"):
        process_word("${X:=y}", ENV)


def test_expansion_reports_the_variables_read_set_or_not() -> None:
    result = Lexer().process_word("${HOME} ${UNSET:-x} $EMPTY '$QUOTED'", ENV)
    assert result.text == "/root x  $QUOTED"
    assert result.used == {"HOME", "EMPTY"}
    assert result.unset == {"UNSET"}
    words, used = expand(["$HOME", "${NOPE-x}", "lit"], ENV)
    assert words == ["/root", "x", "lit"]
    assert used == {"HOME", "NOPE"}


def test_skip_unset_and_raw_quotes_keep_the_text_as_written() -> None:
    lexer = Lexer(raw_quotes=True, skip_unset=True)
    assert lexer.process_word("'$A' \"${B:-x}\" $HOME ${C/a/b}", ENV).text == \
        "'$A' \"${B:-x}\" /root ${C/a/b}"


def test_skip_quotes_leaves_quotes_alone_but_expands() -> None:
    lexer = Lexer(skip_quotes=True)
    assert lexer.process_word("'$HOME' \"x\" \\$y", ENV).text == "'/root' \"x\" $y"


def test_heredoc_marker_stays_one_word() -> None:
    assert process_words("cat <<EOF", {}) == ["cat", "<<EOF"]
    assert process_words("cat << EOF", {}) == ["cat", "<< EOF"]
    assert process_words("a < b", {}) == ["a", "<", "b"]
