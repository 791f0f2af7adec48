"""dockerignore: reading .dockerignore and matching paths as Docker's patternmatcher."""

from __future__ import annotations

import pytest

from shellctr.parts.dockerignore import ContextFilter, IgnoreError, PatternMatcher, read_patterns


def test_read_patterns_cleans_as_docker() -> None:
    text = ("\ufeff# comment\n\n  *.log  \n/abs/path\n./rel/../other\n!  keep.log\n !x\n"
            "  # not a comment\n/\n!/a/\n")
    assert read_patterns(text) == ["*.log", "abs/path", "other", "!keep.log", "!x",
                                   "# not a comment", "/", "!a"]


@pytest.mark.parametrize(("pattern", "path", "excluded"), [
    ("*", "file", True),
    ("*.go", "fileutils.go", True),
    ("**", "file", True),
    ("**", "dir/file", True),
    ("**/", "file", True),
    ("**/**", "dir/file", True),
    ("dir/**", "dir/file", True),
    ("dir/**", "dir/dir2/file", True),
    ("**/dir", "dir", True),
    ("**/dir", "dir/file", True),
    ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**file", "dir/dir/file", True),
    ("**/file*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True),
    ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True),
    ("a[b-d]e", "ace", True),
    ("a[b-d]e", "aae", False),
    ("a[^b-d]e", "aze", True),
    (".*", ".foo", True),
    (".*", "foo", False),
    ("abc.def", "abcdef", False),
    ("abc?def", "abcZdef", True),
    ("a\\\\", "a\\", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "axb", False),
    ("**/foo/bar", "foo/bar", True),
    ("abc/**", "abc", False),
    ("abc/**", "abc/def/ghi", True),
    ("**/.foo", ".foo", True),
    ("**/.foo", "bar.foo", False),
    ("a(b)c/def", "a(b)c/def", True),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("docs", "docs/sub/README.md", True),
    ("docs/", "docs/README.md", True),
    ("node_modules", "src/node_modules", False),
    ("**/node_modules", "src/node_modules/x/y", True),
    ("*/temp*", "somedir/temporary.txt", True),
    ("*/*/temp*", "somedir/subdir/temporary.txt", True),
    ("temp?", "tempa", True),
])
def test_single_pattern(pattern: str, path: str, excluded: bool) -> None:
    assert PatternMatcher([pattern]).excluded(path) is excluded


@pytest.mark.parametrize(("patterns", "path", "excluded"), [
    (["!fileutils.go", "*.go"], "fileutils.go", True),
    (["*.go", "!fileutils.go"], "fileutils.go", False),
    (["docs", "!docs/README.md"], "docs/README.md", False),
    (["docs/*", "!docs/README.md"], "docs/README.md", False),
    (["docs", "!docs/README.md"], "docs/other.md", True),
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["*.md", "!README*.md", "README-secret.md"], "README-secret.md", True),
    (["*.md", "!README*.md", "README-secret.md"], "README-public.md", False),
    (["*.md", "README-secret.md", "!README*.md"], "README-secret.md", False),
    ([], "anything", False),
    (["*"], ".", False),
])
def test_exceptions_in_order(patterns: list[str], path: str, excluded: bool) -> None:
    assert PatternMatcher(patterns).excluded(path) is excluded


@pytest.mark.parametrize("patterns", [["!"], ["["], ["a[b"], ["x\\"]])
def test_malformed_patterns(patterns: list[str]) -> None:
    with pytest.raises(IgnoreError):
        PatternMatcher(patterns)


def test_blank_patterns_are_skipped() -> None:
    assert len(PatternMatcher(["docs", "", "  "]).patterns) == 1


@pytest.mark.parametrize(("patterns", "directory", "skip"), [
    (["docs"], "docs", True),
    (["docs", "!docs/README.md"], "docs", False),
    (["*", "!keep"], "other", True),
    (["*", "!keep/x"], "keep", False),
    (["*", "!**/x"], "any", False),
    (["*", "!a/*/c"], "a", False),
    (["*", "!a/*/c"], "b", True),
    (["src"], "lib", False),
    (["a/b"], "a", False),
])
def test_subtree_excluded(patterns: list[str], directory: str, skip: bool) -> None:
    assert PatternMatcher(patterns).subtree_excluded(directory) is skip


def test_dockerfile_and_dockerignore_are_sent_but_not_copied() -> None:
    rules = ContextFilter.from_text("Dockerfile\n.dockerignore\n*.tmp\n")
    assert rules.sent("Dockerfile") and rules.sent(".dockerignore")
    assert not rules.visible("Dockerfile") and not rules.visible(".dockerignore")
    assert not rules.sent("x.tmp")
    assert rules.visible("src/main.c")
    custom = ContextFilter.from_text("build/\n", dockerfile="./build/Dockerfile.prod")
    assert custom.sent("build/Dockerfile.prod") and not custom.visible("build/Dockerfile.prod")
    assert not custom.skip_directory("build")
    assert ContextFilter.from_text("build/\n").skip_directory("build")
    assert ContextFilter.from_text(None).visible("Dockerfile")
