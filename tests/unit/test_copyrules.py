"""copyrules: COPY/ADD sources, destinations, confinement to the context, archives."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
from collections.abc import Iterable

import pytest

from shellctr.parts.copyrules import (
    CopyError,
    CopyOp,
    Entry,
    Source,
    compression,
    contains_wildcards,
    context_path,
    is_archive,
    is_git_url,
    is_tar_header,
    is_url,
    match_sources,
    normalize_dest,
    parse_chmod,
    parse_chown,
    plan,
    resolve_chown,
    resolve_in_scope,
    url_filename,
)


class FakeContext:
    """A context listing from a dict: path -> "file", "dir" or "->target" (a symlink)."""

    def __init__(self, tree: dict[str, str]) -> None:
        self.tree = tree

    def lookup(self, path: str) -> Entry | None:
        if path == "":
            return Entry("dir")
        kind = self.tree.get(path)
        if kind is None:
            return None
        if kind.startswith("->"):
            return Entry("symlink", kind[2:])
        return Entry("dir" if kind == "dir" else "file")

    def walk(self) -> Iterable[str]:
        return sorted(self.tree)


CONTEXT = FakeContext({
    "a.txt": "file", "b.txt": "file", "c.md": "file", "dir": "dir", "dir/x.txt": "file",
    "dir/sub": "dir", "dir/sub/y.txt": "file", "link": "->a.txt", "abslink": "->/dir/x.txt",
    "out": "->../../etc/passwd", "dirlink": "->dir", "loop": "->loop", "star*": "file",
})


@pytest.mark.parametrize(("source", "path"), [
    ("a.txt", "a.txt"), ("/a.txt", "a.txt"), ("./a.txt", "a.txt"), (".", ""), ("./", ""),
    ("/", ""), ("dir/../a.txt", "a.txt"), ("dir//x.txt", "dir/x.txt"),
])
def test_context_path(source: str, path: str) -> None:
    assert context_path(source) == path


@pytest.mark.parametrize("source", ["..", "../x", "dir/../../x", "./../x", "/../x"])
def test_context_path_refuses_leaving_the_context(source: str) -> None:
    with pytest.raises(CopyError, match="forbidden path outside the build context"):
        context_path(source)


@pytest.mark.parametrize(("workdir", "dest", "normalized"), [
    ("", "/app", "/app"), ("/srv", "app", "/srv/app"), ("/srv", "app/", "/srv/app/"),
    ("/srv", ".", "/srv"), ("/srv", "./", "/srv/"), ("", "x/../y/", "/y/"), ("/", "/", "/"),
    ("", ".", "/"), ("/w", "/abs/", "/abs/"),
])
def test_normalize_dest(workdir: str, dest: str, normalized: str) -> None:
    assert normalize_dest(workdir, dest) == normalized


def test_wildcards_and_urls() -> None:
    assert contains_wildcards("*.txt") and contains_wildcards("a?") and contains_wildcards("[ab]")
    assert not contains_wildcards("plain") and not contains_wildcards("star\\*")
    assert is_url("https://x/y") and is_url("http://x") and not is_url("ftp://x")
    assert is_git_url("https://github.com/a/b.git") and is_git_url("git@github.com:a/b")
    assert is_git_url("https://x/r.git#main:dir") and not is_git_url("https://x/a.tar.gz")
    assert url_filename("https://x/path/a.tar.gz?v=1") == "a.tar.gz"
    assert url_filename("https://x/path/") == "" and url_filename("https://x") == ""


def names(sources: list[Source]) -> list[tuple[str, str, str]]:
    return [(s.name, s.path, s.kind) for s in sources]


def test_match_sources_plain_wildcards_and_links() -> None:
    assert names(match_sources(["a.txt", "dir"], CONTEXT)) == [
        ("a.txt", "a.txt", "file"), ("dir", "dir", "dir")]
    assert names(match_sources(["*.txt"], CONTEXT)) == [
        ("a.txt", "a.txt", "file"), ("b.txt", "b.txt", "file")]
    assert names(match_sources(["dir/*"], CONTEXT)) == [
        ("dir/sub", "dir/sub", "dir"), ("dir/x.txt", "dir/x.txt", "file")]
    assert names(match_sources(["*/*.txt"], CONTEXT)) == [("dir/x.txt", "dir/x.txt", "file")]
    assert names(match_sources(["[ab].txt"], CONTEXT)) == [
        ("a.txt", "a.txt", "file"), ("b.txt", "b.txt", "file")]
    assert names(match_sources(["star*"], CONTEXT)) == [("star*", "star*", "file")]
    with pytest.raises(CopyError, match="not found"):  # an escaped * is looked up as written
        match_sources(["star\\*"], CONTEXT)
    assert names(match_sources(["link", "abslink", "dirlink"], CONTEXT)) == [
        ("link", "a.txt", "file"), ("abslink", "dir/x.txt", "file"), ("dirlink", "dir", "dir")]
    assert names(match_sources(["."], CONTEXT)) == [(".", "", "dir")]


def test_a_link_out_of_the_context_stays_inside_it() -> None:
    assert resolve_in_scope("out", CONTEXT.lookup) == "etc/passwd"
    with pytest.raises(CopyError, match=r"file not found in build context.*stat out.*a link to "
                                        r"etc/passwd, inside the context"):
        match_sources(["out"], CONTEXT)
    with pytest.raises(CopyError, match="too many links"):
        match_sources(["loop"], CONTEXT)
    assert resolve_in_scope("dirlink/sub/../x.txt", CONTEXT.lookup) == "dir/x.txt"


@pytest.mark.parametrize(("sources", "message"), [
    (["missing"], "file not found in build context or excluded by .dockerignore: stat missing"),
    (["*.nothing"], "no source files were specified"),
    (["../x"], "forbidden path outside the build context: ../x"),
    (["https://x/f"], "source can't be a URL for COPY"),
    (["a["], "syntax error in pattern"),
])
def test_match_sources_errors(sources: list[str], message: str) -> None:
    with pytest.raises(CopyError, match=message.replace("*", "\\*")):
        match_sources(sources, CONTEXT)


def test_add_takes_urls_but_not_git() -> None:
    (url,) = match_sources(["https://x/a.tgz"], CONTEXT, "ADD", allow_urls=True)
    assert (url.url, url.name) == ("https://x/a.tgz", "a.tgz")
    with pytest.raises(CopyError, match="is a git repository"):
        match_sources(["https://x/r.git"], CONTEXT, "ADD", allow_urls=True)


def never_dir(path: str) -> bool:
    return False


def test_plan_destinations() -> None:
    file = Source("dir/x.txt", "dir/x.txt", "file")
    folder = Source("dir", "dir", "dir")
    assert plan([file], "/dst", "", never_dir) == [CopyOp(file, "/dst")]
    assert plan([file], "/dst/", "", never_dir) == [CopyOp(file, "/dst/x.txt")]
    assert plan([file], "dst/", "/w", never_dir) == [CopyOp(file, "/w/dst/x.txt")]
    assert plan([file], ".", "/w", lambda p: p == "/w") == [CopyOp(file, "/w/x.txt")]
    assert plan([file], "/etc", "", lambda p: p == "/etc") == [CopyOp(file, "/etc/x.txt")]
    assert plan([folder], "/dst", "", never_dir) == [CopyOp(folder, "/dst", contents=True)]
    assert plan([file, folder], "/d/", "", never_dir) == [
        CopyOp(file, "/d/x.txt"), CopyOp(folder, "/d", contents=True)]
    with pytest.raises(CopyError, match="When using COPY with more than one source file, the "
                                        "destination must be a directory and end with a /"):
        plan([file, folder], "/d", "", never_dir)


def test_plan_add_archives_and_urls() -> None:
    tar = Source("app.tar.gz", "app.tar.gz", "file")
    plain = Source("notes.tar", "notes.tar", "file")
    url = Source("a.tgz", "", "file", url="https://x/a.tgz")
    unnamed = Source("", "", "file", url="https://x/")
    assert plan([tar, plain, url], "/opt/", "", never_dir, "ADD",
                is_archive=lambda s: s.name == "app.tar.gz") == [
        CopyOp(tar, "/opt", extract=True), CopyOp(plain, "/opt/notes.tar"),
        CopyOp(url, "/opt/a.tgz")]
    assert plan([unnamed], "/f", "", never_dir, "ADD") == [CopyOp(unnamed, "/f")]
    with pytest.raises(CopyError, match="cannot determine filename for source https://x/"):
        plan([unnamed], "/f/", "", never_dir, "ADD")


def tar_bytes(members: dict[str, bytes], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT, tarfile.PAX_FORMAT])
def test_archives_are_found_by_content(fmt: int) -> None:
    data = tar_bytes({"a/b.txt": b"hello"}, fmt)
    assert is_archive(data)
    assert is_archive(gzip.compress(data))
    assert is_archive(bz2.compress(data))
    assert is_archive(lzma.compress(data))
    assert is_archive(gzip.compress(data)[:200])  # the start is enough


@pytest.mark.parametrize("data", [
    b"", b"hello world\n", b"\x1f\x8b\x08" + b"garbage" * 100,
    gzip.compress(b"not a tar" * 100, mtime=0),  # mtime: the same test id on every worker
    bytes(1024), tar_bytes({})[:1024], tar_bytes({"a": b"x"})[:300],
])
def test_non_archives(data: bytes) -> None:
    assert not is_archive(data)


def test_tar_header_checksum_must_match() -> None:
    header = bytearray(tar_bytes({"a": b"x"})[:512])
    assert is_tar_header(bytes(header))
    header[0] ^= 1
    assert not is_tar_header(bytes(header))


def test_compression_magic() -> None:
    assert compression(b"BZh91AY") == "bzip2"
    assert compression(b"\x1f\x8b\x08\x00") == "gzip"
    assert compression(b"\xfd7zXZ\x00\x00") == "xz"
    assert compression(b"\x28\xb5\x2f\xfd\x00") == "zstd"
    assert compression((0x184D2A5A).to_bytes(4, "little") + b"\x00" * 4) == "zstd"
    assert compression(b"\x1f\x8b\x07") is None
    assert is_archive(b"\x28\xb5\x2f\xfd\x00")


PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
GROUP = "root:x:0:\nstaff:x:50:app\napp:x:1000:\n"


@pytest.mark.parametrize(("spec", "ids"), [
    ("1:2", (1, 2)), ("5", (5, 5)), ("app", (1000, 1000)), ("app:staff", (1000, 50)),
    ("root:1000", (0, 1000)), ("0", (0, 0)),
])
def test_resolve_chown(spec: str, ids: tuple[int, int]) -> None:
    assert resolve_chown(spec, PASSWD, GROUP) == ids


@pytest.mark.parametrize(("spec", "passwd", "message"), [
    ("a:b:c", PASSWD, "invalid chown string format: a:b:c"),
    ("nobody", PASSWD, "can't find uid for user nobody: no such user: nobody"),
    ("app:nogroup", PASSWD, "can't find gid for group nogroup: no such group: nogroup"),
    ("app", None, "can't find uid for app: the image has no /etc/passwd"),
])
def test_resolve_chown_errors(spec: str, passwd: str | None, message: str) -> None:
    with pytest.raises(CopyError, match=message):
        resolve_chown(spec, passwd, GROUP)


def test_chown_and_chmod_parsing() -> None:
    assert parse_chown("u") == ("u", "u") and parse_chown("u:g") == ("u", "g")
    assert parse_chmod("0755") == 0o755 and parse_chmod("644") == 0o644
    assert parse_chmod("4755") == 0o4755
    for bad in ("", "u+x", "0789", "77777"):
        with pytest.raises(CopyError, match="invalid --chmod"):
            parse_chmod(bad)
