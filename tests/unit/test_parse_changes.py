"""image.parse_changes: the Dockerfile instructions `import -c` accepts."""

from __future__ import annotations

import pytest

from shellctr.core.errors import ShellctrError
from shellctr.core.state import ImageConfig
from shellctr.engine.image import parse_changes

EMPTY = ImageConfig()


def change(*changes: str, base: ImageConfig = EMPTY) -> ImageConfig:
    return parse_changes(list(changes), base)


def test_no_changes_keep_the_base() -> None:
    assert change() == EMPTY
    base = ImageConfig(Env=["A=1"], Cmd=["sh"])
    assert change(base=base) == base


def test_cmd_json_form_is_taken_as_given() -> None:
    assert change('CMD ["sh", "-c", "echo $HOME"]').Cmd == ["sh", "-c", "echo $HOME"]
    assert change("CMD []").Cmd == []


def test_cmd_shell_form_is_wrapped_in_bin_sh() -> None:
    assert change("CMD echo hello   world").Cmd == ["/bin/sh", "-c", "echo hello   world"]


def test_entrypoint_both_forms() -> None:
    assert change('ENTRYPOINT ["/bin/app", "--serve"]').Entrypoint == ["/bin/app", "--serve"]
    assert change("ENTRYPOINT exec app").Entrypoint == ["/bin/sh", "-c", "exec app"]


def test_instructions_are_case_insensitive_and_trimmed() -> None:
    config = change('  cmd ["a"]  ', "entrypoint b", "workdir /srv", "user 1000")
    assert config == ImageConfig(Cmd=["a"], Entrypoint=["/bin/sh", "-c", "b"],
                                 WorkingDir="/srv", User="1000")


def test_later_changes_win() -> None:
    assert change('CMD ["a"]', 'CMD ["b"]').Cmd == ["b"]


def test_env_key_value_pairs_with_quotes() -> None:
    config = change('ENV A=1 B="two words" C=', "ENV D=x=y")
    assert config.Env == ["A=1", "B=two words", "C=", "D=x=y"]


def test_env_legacy_form_takes_the_rest_of_the_line() -> None:
    assert change("ENV GREETING hello   big world").Env == ["GREETING=hello   big world"]


def test_env_overrides_in_place_and_keeps_the_base() -> None:
    base = ImageConfig(Env=["PATH=/bin", "A=1"])
    assert change("ENV A=2 B=3", "ENV PATH=/usr/bin", base=base).Env == [
        "PATH=/usr/bin", "A=2", "B=3"]


@pytest.mark.parametrize(("changes", "workdir"), [
    (["WORKDIR /srv/app"], "/srv/app"),
    (["WORKDIR app"], "/app"),
    (["WORKDIR /srv", "WORKDIR app"], "/srv/app"),
    (["WORKDIR /srv", "WORKDIR /opt"], "/opt"),
    (["WORKDIR /srv/app/", "WORKDIR ../lib"], "/srv/lib"),
    (["WORKDIR /a/./b"], "/a/b"),
])
def test_workdir_relative_to_the_previous_one(changes: list[str], workdir: str) -> None:
    assert change(*changes).WorkingDir == workdir


def test_user() -> None:
    assert change("USER nobody").User == "nobody"
    assert change("USER 1000:1000").User == "1000:1000"


@pytest.mark.parametrize(("text", "message"), [
    ("CMD [oops", "bad JSON array"),
    ('CMD ["a",', "bad JSON array"),
    ('CMD ["a", 1]', "expected a JSON array of strings"),
    ('ENTRYPOINT [["a"]]', "expected a JSON array of strings"),
    ("CMD", "CMD needs an argument"),
    ("ENV   ", "ENV needs an argument"),
    ('ENV A="unclosed', "No closing quotation"),
    ("ENV A=1 B", "'B' is not KEY=VALUE"),
    ("ENV A=1 =2", "'=2' is not KEY=VALUE"),
    ("HEALTHCHECK NONE", "HEALTHCHECK is not supported"),
    ("EXPOSE http", "bad port 'http'"),
    ("RUN apt-get update", "RUN is not supported"),
    ("", "needs an argument"),
])
def test_malformed_or_unknown_changes_are_errors(text: str, message: str) -> None:
    with pytest.raises(ShellctrError, match=message) as info:
        change(text)
    assert info.value.message.startswith(f"invalid change {text!r}")


def test_unknown_instruction_hint_lists_the_supported_ones() -> None:
    with pytest.raises(ShellctrError) as info:
        change("ONBUILD RUN x")
    assert info.value.hint == ("use CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, "
                               "VOLUME or WORKDIR")


def test_the_oci_config_fields_docker_takes_as_changes() -> None:
    config = parse_changes(["EXPOSE 80 53/udp", 'VOLUME ["/data", "/logs"]', "VOLUME /x",
                            'LABEL a=b "c d"=e', "STOPSIGNAL SIGQUIT"], ImageConfig())
    assert config.ExposedPorts == {"80/tcp": {}, "53/udp": {}}
    assert config.Volumes == {"/data": {}, "/logs": {}, "/x": {}}
    assert config.Labels == {"a": "b", "c d": "e"}
    assert config.StopSignal == "SIGQUIT"
