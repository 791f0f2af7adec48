"""cmd.Cmd.shell(): the one text a user reads for every host change."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from shellctr.core.cmd import Cmd, write_file_cmd


def test_plain_words_are_not_quoted() -> None:
    assert Cmd(["mkdir", "--mode=755", "/var/lib/shellctr/x"]).shell() == (
        "mkdir --mode=755 /var/lib/shellctr/x")


def test_awkward_words_are_quoted_for_bash() -> None:
    cmd = Cmd(["echo", "it's", "a b", "$HOME", "", "*", "x;y", "--xattrs-include=*"])
    assert cmd.shell() == (
        "echo 'it'\"'\"'s' 'a b' '$HOME' '' '*' 'x;y' '--xattrs-include=*'")


def test_awkward_words_round_trip_through_bash() -> None:
    words = ["it's", "a b", "$HOME", "", "*", "x;y", "back\\slash", "new\nline", "tab\t", "é"]
    line = Cmd(["printf", "%s\\0", *words]).shell()
    out = subprocess.run(["bash", "-c", line], capture_output=True, check=True).stdout
    assert out.decode().split("\0")[:-1] == words


def test_redirect_is_quoted() -> None:
    assert Cmd(["cat"], redirect="/tmp/a b").shell() == "cat > '/tmp/a b'"


def test_text_ending_in_newline_is_a_quoted_heredoc() -> None:
    assert write_file_cmd("/etc/hostname", "web\n").shell() == (
        "cat > /etc/hostname <<'EOF'\nweb\nEOF")


def test_heredoc_marker_avoids_a_collision_with_the_text() -> None:
    assert write_file_cmd("/f", "EOF\n").shell() == "cat > /f <<'EOF_'\nEOF\nEOF_"
    assert write_file_cmd("/f", "EOF and EOF_\n").shell() == (
        "cat > /f <<'EOF__'\nEOF and EOF_\nEOF__")


def test_text_without_final_newline_uses_printf() -> None:
    assert write_file_cmd("/f", "no newline").shell() == "printf %s 'no newline' | cat > /f"
    assert write_file_cmd("/f", "").shell() == "printf %s '' | cat > /f"


@pytest.mark.parametrize("text", [
    "plain\n",
    "$HOME `date` $(id) 'single' \"double\" \\n\n",
    "EOF\nEOF_\n  EOF\n",
    "no final newline",
    "",
    "two\nlines, no final newline",
    '{"json":"record","n":1}\n',
])
def test_file_write_line_writes_exactly_the_text(tmp_path: Path, text: str) -> None:
    target = tmp_path / "out file"
    subprocess.run(["bash", "-c", write_file_cmd(target, text).shell()], check=True)
    assert target.read_text() == text


def test_secrets_render_as_stars_in_argv_and_heredoc() -> None:
    cmd = Cmd(["login", "--password=hunter2"], redirect="/f", stdin="token hunter2\n",
              secrets=("hunter2",))
    assert cmd.shell() == "login --password=*** > /f <<'EOF'\ntoken ***\nEOF"
    assert "hunter2" not in repr(cmd)
    assert cmd.argv == ["login", "--password=hunter2"]  # what runs keeps the secret


def test_commands_compare_by_their_shell_line() -> None:
    assert Cmd(["rm", "/x"]) == Cmd(["rm", "/x"])
    assert Cmd(["rm", "/x"]) != Cmd(["rm", "/y"])
    assert len({Cmd(["rm", "/x"]), Cmd(["rm", "/x"])}) == 1
