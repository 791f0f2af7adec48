"""The command line's flags behave as Docker's: no abbreviations, every Docker `run` flag
either implemented or refused by its own name, boolean `=true`/`=false`, an unknown flag
refused wherever it stands, `--version`, and each verb's exit codes."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest

from shellctr.cli.common import FlagError
from shellctr.cli.parser import build_parser

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


def docker_flags(verb: str) -> list[tuple[str, str | None, bool]]:
    """(long flag, short flag, takes a value) of each flag `docker VERB --help` lists."""
    out = subprocess.run([DOCKER, verb, "--help"], capture_output=True, text=True,
                         check=False).stdout
    flags = []
    for match in re.finditer(r"^\s+(?:-(\w), )?--([\w-]+)(?: (\w+))?", out, re.M):
        short, long, kind = match.groups()
        flags.append((f"--{long}", f"-{short}" if short else None, kind is not None))
    return flags


def parse(*argv: str) -> Any:
    return build_parser(list(argv)).parse_args(list(argv))


@pytest.mark.skipif(not shutil.which(DOCKER), reason="no docker CLI to list its flags")
@pytest.mark.parametrize("verb", ["run", "create"])
def test_every_docker_run_flag_is_implemented_or_refused_by_its_name(verb: str) -> None:
    flags = docker_flags(verb)
    assert len(flags) > 90  # the whole list, not a parsing accident
    ours = build_parser([verb])._subparsers._group_actions[0].choices[verb]  # type: ignore
    known = ours._option_string_actions
    for long, short, takes_value in flags:
        if long == "--help":
            continue
        argv = [verb, long, *(["1"] if takes_value else []), "busybox"]
        if long in known:
            action = known[long]
            assert (action.nargs != 0) == takes_value, long  # a value where Docker takes one
            if short:
                assert known.get(short) is action, (short, long)  # the same short flag
            continue
        with pytest.raises(FlagError, match=f"^unknown flag: {re.escape(long)} \\("):
            parse(*argv)  # never read as another flag (`--pid` as `--pids-limit`)


@pytest.mark.parametrize("argv", [
    ["run", "--pids", "5", "busybox"],  # not --pids-limit
    ["create", "--oom-kill", "busybox"],  # not --oom-kill-disable
    ["run", "--rest", "always", "busybox"],  # not --restart
    ["ps", "--al"],  # not --all
    ["logs", "--foll", "web"],
])
def test_abbreviated_flags_are_unknown(argv: list[str]) -> None:
    with pytest.raises(FlagError, match=r"^unknown flag: --"):
        parse(*argv)


def test_an_unknown_flag_after_the_others_is_a_flag_error_not_the_image() -> None:
    with pytest.raises(FlagError, match=r"^unknown flag: --blkio-weight-device \("):
        parse("run", "--blkio-weight-device=/dev/sda:200", "--rm", "busybox")
    with pytest.raises(FlagError, match=r"^unknown shorthand flag: 'Z' in -itZ \("):
        parse("run", "-itZ", "busybox")
    # after the image, everything is the container's command
    args = parse("run", "--rm", "busybox", "ls", "--bogus", "-Z")
    assert args.command == ["ls", "--bogus", "-Z"]


@pytest.mark.parametrize(("argv", "rm"), [
    (["run", "--rm=true", "busybox"], True),
    (["run", "--rm=false", "busybox"], False),
    (["run", "--rm=1", "busybox"], True),
    (["run", "--rm=F", "busybox"], False),
    (["run", "--rm", "busybox"], True),
])
def test_boolean_flags_take_go_s_booleans(argv: list[str], rm: bool) -> None:
    assert parse(*argv).rm is rm


def test_short_boolean_flags_take_them_too_and_a_bad_one_is_docker_s_error() -> None:
    assert parse("ps", "-a=false").all is False
    assert parse("ps", "-a=true").all is True
    with pytest.raises(FlagError, match=re.escape(
            'invalid argument "maybe" for "--rm" flag: strconv.ParseBool: parsing "maybe": '
            "invalid syntax")):
        parse("run", "--rm=maybe", "busybox")


def test_a_flag_s_value_may_look_like_a_flag() -> None:
    assert parse("run", "--memory-swap", "-1", "busybox").memory_swap == "-1"
    assert parse("logs", "--tail", "-1", "web").tail == "-1"


def test_version_flag(cli: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli("--version")
    assert info.value.code == 0
    assert re.fullmatch(r"shellctr version \d+\.\d+\.\d+\n", capsys.readouterr().out)


def test_the_unknown_verb_error_lists_no_private_verb(
        cli: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli("bogus")
    assert code == 1 and "_exited" not in err
    with pytest.raises(SystemExit):
        cli("--help")
    out = capsys.readouterr().out
    assert "run" in out and "_exited" not in out


def complete(script: str, *words: str) -> list[str]:
    """What the bash completion `script` offers for `shellctr WORDS...` (last one typed)."""
    program = (f"{script}\nCOMP_WORDS=(shellctr {' '.join(words)}); "
               f"COMP_CWORD={len(words)}; _shellctr; echo \"${{COMPREPLY[@]}}\"")
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_bash_completion_offers_verbs_groups_and_flags(
        cli: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, script, err = cli("completion", "bash")
    assert (code, err) == (0, "")
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    assert {"pause", "port", "ps"} <= set(complete(script, "p"))
    assert not any(verb.startswith("_") for verb in complete(script, ""))  # no _exited
    assert complete(script, "ps", "--a") == ["--all"]
    assert "prune" in complete(script, "container", "p")
    assert complete(script, "image", "ls", "--fo") == ["--format"]
    assert "--condition" in complete(script, "wait", "--")


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_completions(cli: Any, shell: str) -> None:
    code, script, _ = cli("completion", shell)
    assert code == 0 and "shellctr" in script and "_exited" not in script
    assert (cli("completion", "tcsh")[0]) == 125  # an unknown shell: a usage error


def test_operands_may_come_between_flags_as_cobra_allows() -> None:
    args = parse("rm", "a", "--force", "b", "--volumes", "c")
    assert (args.containers, args.force, args.volumes) == (["a", "b", "c"], True, True)
    assert parse("logs", "web", "--tail", "3").container == "web"
    assert parse("inspect", "-f", "{{.Id}}", "a", "--type", "container", "b").names == ["a", "b"]
    # after `--` even a dash-led word is an operand
    assert parse("rm", "-f", "--", "-x").containers == ["-x"]
