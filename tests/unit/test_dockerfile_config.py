"""dockerfile_config: a stage's config through the metadata steps, as Docker's builder."""

from __future__ import annotations

import pytest

from shellctr.parts import golang
from shellctr.parts.dockerfile import parse
from shellctr.parts.dockerfile_build import BuildArgs
from shellctr.parts.dockerfile_config import (
    DEFAULT_PATH,
    StageConfig,
    begin_stage,
    onbuild_trigger_line,
)


def build(body: str, base: dict[str, object] | None = None) -> tuple[StageConfig, list[str]]:
    """Apply a stage's metadata steps the way a builder would (expanding each first)."""
    config, _ = begin_stage(base)
    args = BuildArgs({"CLI": "from-cli"})
    history = []
    for step in parse("FROM busybox\n" + body).stages[0].steps:
        expanded, _ = step.expand(args.expansion_env(config.env))
        history.append(config.apply(expanded, args))
    return config, history


def test_a_config_through_every_metadata_instruction() -> None:
    config, history = build(
        "ARG CLI\nARG V=arg\nENV A=1 B=\"x y\" C=${V}-z D=$A\nENV OLD some \"quoted\" value\n"
        'LABEL "com.x"="y z" v=$V cli=$CLI\nEXPOSE 80 443/udp 8000-8001\nWORKDIR app\n'
        "WORKDIR sub/../src\nUSER ${V}:1\nSTOPSIGNAL SIGUSR1\nVOLUME /data $A\n"
        "HEALTHCHECK --interval=5s --retries=3 CMD true\nCMD echo hi\nENTRYPOINT [\"/x\"]\n"
        'SHELL ["/bin/ash","-c"]\nCMD echo two\nONBUILD RUN echo $A\nMAINTAINER me\n')
    assert config.to_config() == {
        "User": "arg:1",
        "ExposedPorts": {"443/udp": {}, "80/tcp": {}, "8000/tcp": {}, "8001/tcp": {}},
        "Env": [f"PATH={DEFAULT_PATH}", "A=1", "B=x y", "C=arg-z", "D=",
                "OLD=some quoted value"],
        "Cmd": ["/bin/ash", "-c", "echo two"],
        "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 5 * golang.SECOND,
                        "Retries": 3},
        "Volumes": {"/data": {}, "1": {}},
        "WorkingDir": "/app/src",
        "Entrypoint": ["/x"],
        "OnBuild": ["RUN echo $A"],
        "Labels": {"com.x": "y z", "v": "arg", "cli": "from-cli"},
        "StopSignal": "SIGUSR1",
        "Shell": ["/bin/ash", "-c"],
    }
    assert config.author == "me"
    assert history[:3] == ["/bin/sh -c #(nop)  ARG CLI", "/bin/sh -c #(nop)  ARG V=arg",
                           "/bin/sh -c #(nop)  ENV A=1 B=x y C=arg-z D="]
    assert history[6:8] == ["/bin/sh -c #(nop) WORKDIR /app", "/bin/sh -c #(nop) WORKDIR /app/src"]
    assert history[14] == "/bin/ash -c #(nop)  SHELL [/bin/ash -c]"
    assert history[15] == '/bin/ash -c #(nop)  CMD ["/bin/ash" "-c" "echo two"]'


def test_entrypoint_drops_the_base_cmd_unless_this_build_set_one() -> None:
    base = {"Cmd": ["sh"], "Env": ["PATH=/bin"]}
    config, _ = build('ENTRYPOINT ["/init"]\n', base)
    assert (config.cmd, config.entrypoint, config.env) == (None, ["/init"], ["PATH=/bin"])
    config, _ = build('CMD ["x"]\nENTRYPOINT ["/init"]\n', base)
    assert config.cmd == ["x"]
    config, _ = build("ENTRYPOINT []\n", {"Entrypoint": ["/old"], "Cmd": ["c"]})
    assert (config.entrypoint, config.cmd) == (None, None)


def test_env_replaces_in_place() -> None:
    config, _ = build("ENV B=new\nENV C=$B$B\n", {"Env": ["A=1", "B=old", "PATH=/p"]})
    assert config.env == ["A=1", "B=new", "PATH=/p", "C=newnew"]


def test_begin_stage_takes_the_base_config_and_its_triggers() -> None:
    config, triggers = begin_stage({
        "Env": ["X=1"], "Cmd": ["sh"], "WorkingDir": "/w", "User": "u",
        "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/v": {}}, "Labels": {"a": "b"},
        "StopSignal": "SIGINT", "Healthcheck": {"Test": ["NONE"]}, "Shell": ["/bin/ash", "-c"],
        "OnBuild": ["RUN echo hi"]})
    assert triggers == ["RUN echo hi"]
    assert config.to_config() == {
        "User": "u", "ExposedPorts": {"80/tcp": {}}, "Env": ["X=1", f"PATH={DEFAULT_PATH}"],
        "Cmd": ["sh"], "Healthcheck": {"Test": ["NONE"]}, "Volumes": {"/v": {}},
        "WorkingDir": "/w", "Labels": {"a": "b"}, "StopSignal": "SIGINT",
        "Shell": ["/bin/ash", "-c"]}
    assert begin_stage(None)[0].to_config() == {"Env": [f"PATH={DEFAULT_PATH}"]}
    assert onbuild_trigger_line(1) == "# Executing 1 build trigger"
    assert onbuild_trigger_line(2) == "# Executing 2 build triggers"


def test_copy_is_independent() -> None:
    config, _ = build("LABEL a=1\nENV X=1\n")
    clone = config.copy()
    clone.labels["b"] = "2"
    clone.env.append("Y=2")
    assert "b" not in config.labels and len(config.env) == 2


@pytest.mark.parametrize(("body", "message"), [
    ("STOPSIGNAL SIGNOPE\n", "Invalid signal: SIGNOPE"),
    ("EXPOSE 80/icmp\n", "invalid proto: icmp"),
])
def test_values_docker_refuses(body: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(body)


def test_run_and_copy_are_not_applied_here() -> None:
    with pytest.raises(TypeError, match="RUN is not a metadata step"):
        build("RUN true\n")
