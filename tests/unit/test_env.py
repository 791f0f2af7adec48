"""parts.request's parse_env / build_env / build_command / parse_restart / parse_labels:
Docker's rules for env, argv, restart policies and labels."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shellctr.core.errors import NotFound, ShellctrError
from shellctr.parts.request import (
    DEFAULT_PATH,
    RunRequest,
    build_command,
    build_env,
    parse_env,
    parse_labels,
    parse_restart,
)

from .helpers import run_request


def options(**kwargs: object) -> RunRequest:
    return run_request("busybox", **kwargs)


def parse(request: RunRequest) -> dict[str, str]:
    """-e and --env-file, with this process's environment and files."""
    return parse_env(request, os.environ, lambda path: Path(path).read_text())


def env_of(request: RunRequest, image_env: list[str], hostname: str) -> list[str]:
    return build_env(request, image_env, hostname, parse(request))


# -- build_env -------------------------------------------------------------------------
def test_default_env_is_path_and_hostname_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "do-not-leak")
    monkeypatch.setenv("TERM", "screen")
    assert env_of(options(), [], "web") == [f"PATH={DEFAULT_PATH}", "HOSTNAME=web"]
    assert DEFAULT_PATH == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def test_tty_sets_term_xterm() -> None:
    assert env_of(options(tty=True), [], "web") == [
        f"PATH={DEFAULT_PATH}", "HOSTNAME=web", "TERM=xterm"]


def test_image_env_overrides_path_in_place_and_adds_its_own() -> None:
    env = env_of(options(tty=True), ["PATH=/opt/bin", "LANG=C.UTF-8", "TERM=dumb"], "web")
    assert env == ["PATH=/opt/bin", "HOSTNAME=web", "TERM=dumb", "LANG=C.UTF-8"]


def test_image_env_entries_without_equals_are_ignored() -> None:
    assert env_of(options(), ["JUNK", "A=1=2"], "h") == [
        f"PATH={DEFAULT_PATH}", "HOSTNAME=h", "A=1=2"]


def test_caller_env_overrides_the_image_env() -> None:
    env = env_of(options(env=["LANG=en", "HOSTNAME=x", "NEW=", "PATH=/p"]), ["LANG=C"], "h")
    assert env == ["PATH=/p", "HOSTNAME=x", "LANG=en", "NEW="]


# -- parse_env -------------------------------------------------------------------------
def test_env_name_alone_takes_the_callers_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_CALLER", "value with spaces")
    monkeypatch.delenv("UNSET_IN_CALLER", raising=False)
    assert parse(options(env=["FROM_CALLER", "UNSET_IN_CALLER"])) == {
        "FROM_CALLER": "value with spaces"}


def test_env_values_are_kept_verbatim() -> None:
    assert parse(options(env=["A=x=y", "B= spaced ", "C=", "D='q'"])) == {
        "A": "x=y", "B": " spaced ", "C": "", "D": "'q'"}


def test_later_env_wins() -> None:
    assert parse(options(env=["A=1", "A=2"])) == {"A": "2"}


@pytest.mark.parametrize("item", ["=x", "=", "", " A=1", "A B=1", "A =1"])
def test_invalid_env_is_an_error(item: str) -> None:
    with pytest.raises(ShellctrError, match="invalid environment variable") as info:
        parse(options(env=[item]))
    assert info.value.hint == "use -e NAME=VALUE or -e NAME"


def test_env_file_skips_comments_and_blank_lines(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_CALLER", "yes")
    env_file = tmp_path / "app.env"
    env_file.write_text(
        "# a comment\n"
        "\n"
        "   \n"
        "A=1\n"
        "  # an indented comment\n"
        "B=two words # not a comment\n"
        "FROM_CALLER\n"
        "URL=http://x/#frag\n"
    )
    assert parse(options(env_file=[str(env_file)])) == {
        "A": "1", "B": "two words # not a comment", "FROM_CALLER": "yes",
        "URL": "http://x/#frag"}


def test_env_files_in_order_then_e_flags_win(tmp_path: Path) -> None:
    first, second = tmp_path / "1.env", tmp_path / "2.env"
    first.write_text("A=file1\nB=file1\nC=file1\n")
    second.write_text("B=file2\n")
    parsed = parse(options(env_file=[str(first), str(second)], env=["C=flag"]))
    assert parsed == {"A": "file1", "B": "file2", "C": "flag"}


def test_invalid_line_in_env_file_is_an_error(tmp_path: Path) -> None:
    env_file = tmp_path / "bad.env"
    env_file.write_text("=oops\n")
    with pytest.raises(ShellctrError, match="invalid environment variable: '=oops'"):
        parse(options(env_file=[str(env_file)]))


def test_missing_env_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"cannot read env file .*missing\.env"):
        parse(options(env_file=[str(tmp_path / "missing.env")]))


# -- build_command ---------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "entrypoint", "cmd", "expected"), [
    ({}, None, ["sh"], ([], ["sh"])),  # the image's CMD
    ({"command": ["ls", "-l"]}, None, ["sh"], ([], ["ls", "-l"])),  # the caller's replaces it
    ({}, ["/init"], ["--serve"], (["/init"], ["--serve"])),  # entrypoint + CMD
    ({"command": ["--debug"]}, ["/init"], ["--serve"], (["/init"], ["--debug"])),
    ({"entrypoint": "/bin/echo"}, ["/init"], ["--serve"], (["/bin/echo"], [])),  # drops CMD
    ({"entrypoint": "/bin/echo", "command": ["hi"]}, ["/init"], ["x"], (["/bin/echo"], ["hi"])),
    ({"entrypoint": "", "command": ["ls"]}, ["/init"], ["x"], ([], ["ls"])),  # empty: none
    ({"entrypoint": "sh -c"}, None, None, (["sh -c"], [])),  # one word, as Docker takes it
    ({}, ["/init", "-v"], None, (["/init", "-v"], [])),  # an entrypoint alone
])
def test_build_command_combines_as_docker_does(
        kwargs: dict[str, object], entrypoint: list[str] | None, cmd: list[str] | None,
        expected: tuple[list[str], list[str]]) -> None:
    assert build_command(options(**kwargs), entrypoint, cmd) == expected


def test_build_command_does_not_share_the_images_lists() -> None:
    entrypoint, cmd = ["/init"], ["--serve"]
    entry, args = build_command(options(), entrypoint, cmd)
    entry.append("x")
    args.append("y")
    assert (entrypoint, cmd) == (["/init"], ["--serve"])


@pytest.mark.parametrize(("kwargs", "entrypoint", "cmd"), [
    ({}, None, None),
    ({}, [], []),
    ({"entrypoint": ""}, ["/init"], ["sh"]),
])
def test_no_command_at_all_is_an_error(kwargs: dict[str, object], entrypoint: list[str] | None,
                                       cmd: list[str] | None) -> None:
    with pytest.raises(ShellctrError, match="no command specified") as info:
        build_command(options(**kwargs), entrypoint, cmd)
    assert info.value.hint == "give a command after the image name"


# -- parse_restart / parse_labels ------------------------------------------------------
@pytest.mark.parametrize(("value", "parsed"), [
    ("no", ("no", 0)),
    ("always", ("always", 0)),
    ("unless-stopped", ("unless-stopped", 0)),
    ("on-failure", ("on-failure", 0)),  # no limit
    ("on-failure:5", ("on-failure", 5)),
    ("on-failure:0", ("on-failure", 0)),
])
def test_parse_restart(value: str, parsed: tuple[str, int]) -> None:
    assert parse_restart(value, auto_remove=False) == parsed


@pytest.mark.parametrize("value", ["", "yes", "Always", "always:3", "no:1", "unless-stopped:2",
                                   "on-failure:", "on-failure:-1", "on-failure:x",
                                   "on-failure:1:2", "on-failure:1.5"])
def test_parse_restart_refuses_other_policies(value: str) -> None:
    with pytest.raises(ShellctrError, match=f"^invalid restart policy {value!r}") as info:
        parse_restart(value, auto_remove=False)
    assert info.value.hint == "use no, on-failure[:N], always or unless-stopped"


@pytest.mark.parametrize("value", ["always", "on-failure", "on-failure:2", "unless-stopped"])
def test_restart_and_rm_conflict(value: str) -> None:
    with pytest.raises(ShellctrError, match=r"^conflicting options: --restart and --rm") as info:
        parse_restart(value, auto_remove=True)
    assert info.value.hint == "a container removed when it exits cannot be restarted"
    assert parse_restart("no", auto_remove=True) == ("no", 0)


def test_parse_labels() -> None:
    assert parse_labels([]) == {}
    assert parse_labels(["app=shop", "tier", "url=http://x/?a=b", "empty=", "app=web"]) == {
        "app": "web", "tier": "", "url": "http://x/?a=b", "empty": ""}  # the last one wins


@pytest.mark.parametrize("item", ["=x", "=", ""])
def test_parse_labels_needs_a_key(item: str) -> None:
    with pytest.raises(ShellctrError, match=f"^invalid label {item!r}") as info:
        parse_labels([item])
    assert info.value.hint == "use -l KEY=VALUE"
