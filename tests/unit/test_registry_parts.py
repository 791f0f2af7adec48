"""The registry protocol's pure parts: references, platforms, challenges, credentials
files, curl lines with secrets masked, error bodies."""

from __future__ import annotations

import base64
import json

import pytest

from shellctr.core.cmd import Cmd
from shellctr.core.errors import ShellctrError
from shellctr.parts.reference import parse_reference
from shellctr.parts.registry import (
    DOCKER_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    credentials_in,
    curl_argv,
    document_secrets,
    error_detail,
    parse_challenge,
    parse_manifest,
    parse_platform,
    select_platform,
    with_login,
    without_login,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("text", "registry", "repository", "tag", "digest", "name"), [
    ("busybox", "docker.io", "library/busybox", "", "", "busybox"),
    ("user/app", "docker.io", "user/app", "", "", "user/app"),
    ("docker.io/library/busybox:1.36", "docker.io", "library/busybox", "1.36", "", "busybox"),
    ("index.docker.io/user/app:v", "docker.io", "user/app", "v", "", "user/app"),
    ("localhost:5000/x", "localhost:5000", "x", "", "", "localhost:5000/x"),
    ("localhost/x", "localhost", "x", "", "", "localhost/x"),
    (f"host:5000/a/b:tag@{DIGEST}", "host:5000", "a/b", "tag", DIGEST, "host:5000/a/b"),
    (f"busybox@{DIGEST}", "docker.io", "library/busybox", "", DIGEST, "busybox"),
    ("quay.io/org/team/app:1", "quay.io", "org/team/app", "1", "", "quay.io/org/team/app"),
    ("[::1]:5000/app", "[::1]:5000", "app", "", "", "[::1]:5000/app"),
])
def test_references_are_parsed_as_docker_parses_them(text: str, registry: str,
                                                     repository: str, tag: str, digest: str,
                                                     name: str) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest, ref.name) == (
        registry, repository, tag, digest, name)


def test_a_reference_asks_the_registry_for_its_digest_before_its_tag() -> None:
    assert parse_reference("a:1").wanted == "1"
    assert parse_reference("a").wanted == "latest"
    assert parse_reference(f"a:1@{DIGEST}").wanted == DIGEST
    assert str(parse_reference(f"a@{DIGEST}")) == f"a@{DIGEST}"
    assert parse_reference("a").full_name == "docker.io/library/a"


@pytest.mark.parametrize("text", ["a@sha256:12", "a@md5:" + "0" * 32, "up/X", "a:b:c",
                                  "bad_host:1/x", ""])
def test_bad_references_are_refused(text: str) -> None:
    with pytest.raises(ShellctrError, match="invalid reference format"):
        parse_reference(text)


INDEX = {"mediaType": OCI_INDEX, "manifests": [
    {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "1" * 64, "size": 1,
     "platform": {"os": "linux", "architecture": "amd64"}},
    {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "2" * 64, "size": 1,
     "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
    {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "3" * 64, "size": 1,
     "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
]}


def test_the_index_entry_of_the_platform_is_chosen() -> None:
    assert select_platform(INDEX, ("linux", "amd64", ""), "x")["digest"].endswith("1" * 64)
    assert select_platform(INDEX, parse_platform("linux/arm64"), "x")["digest"].endswith(
        "2" * 64)
    assert select_platform(INDEX, parse_platform("linux/aarch64/v8"), "x")["digest"].endswith(
        "2" * 64)
    assert select_platform(INDEX, parse_platform("linux/arm/v7"), "x")["digest"].endswith(
        "3" * 64)


def test_a_platform_the_index_lacks_is_an_error_listing_what_it_offers() -> None:
    with pytest.raises(ShellctrError) as caught:
        select_platform(INDEX, parse_platform("linux/arm/v6"), "x:1")
    assert caught.value.message == ("no matching manifest for linux/arm/v6 in the manifest "
                                    "list of x:1: it offers linux/amd64, linux/arm/v7, "
                                    "linux/arm64/v8")


@pytest.mark.parametrize("text", ["linux", "linux/", "a/b/c/d"])
def test_bad_platforms_are_refused(text: str) -> None:
    with pytest.raises(ShellctrError, match="invalid platform"):
        parse_platform(text)


def test_schema1_manifests_are_refused_with_a_clear_message() -> None:
    with pytest.raises(ShellctrError, match="schema 1 image, which is no longer supported"):
        parse_manifest(b'{"schemaVersion": 1}', "", "old:1")
    with pytest.raises(ShellctrError, match="schema 1"):
        parse_manifest(b"{}", "application/vnd.docker.distribution.manifest.v1+prettyjws",
                       "old:1")


def test_manifest_kinds_come_from_the_content_type_or_the_document() -> None:
    assert parse_manifest(b'{"manifests": []}', "", "x")["mediaType"] == OCI_INDEX
    assert parse_manifest(b'{"layers": []}', "", "x")["mediaType"] == OCI_MANIFEST
    assert parse_manifest(b'{"manifests": []}', DOCKER_LIST, "x")["mediaType"] == DOCKER_LIST
    with pytest.raises(ShellctrError, match="unsupported manifest type"):
        parse_manifest(b'{"mediaType": "text/html"}', "text/html", "x")


def test_bearer_challenges_are_parsed() -> None:
    header = ('Bearer realm="https://auth.example/token",service="registry.example",'
              'scope="repository:a/b:pull,push",error="insufficient_scope"')
    assert parse_challenge(header) == ("bearer", {
        "realm": "https://auth.example/token", "service": "registry.example",
        "scope": "repository:a/b:pull,push", "error": "insufficient_scope"})
    assert parse_challenge('Basic realm="Registry Realm"') == ("basic",
                                                               {"realm": "Registry Realm"})
    assert parse_challenge('Bearer realm="a\\"b", service=s') == ("bearer", {
        "realm": 'a"b', "service": "s"})


def auth(user: str, secret: str) -> str:
    return base64.b64encode(f"{user}:{secret}".encode()).decode()


def test_credentials_are_found_in_docker_and_podman_files() -> None:
    document = {"auths": {"https://index.docker.io/v1/": {"auth": auth("hub", "pw1")},
                          "reg.example:5000": {"auth": auth("me", "p:w")}}}
    assert credentials_in(document, "docker.io") == ("hub", "pw1")
    assert credentials_in(document, "reg.example:5000") == ("me", "p:w")
    assert credentials_in(document, "other") is None
    assert credentials_in({"credHelpers": {"reg": "pass"}, "auths": {}}, "reg") == "pass"
    assert credentials_in({"credsStore": "secretservice"}, "reg") == "secretservice"


def test_login_and_logout_keep_the_rest_of_the_file() -> None:
    document = {"auths": {"a": {"auth": auth("x", "y")}}, "psFormat": "{{.ID}}"}
    logged = with_login(document, "docker.io", "u", "s3")
    assert logged["psFormat"] == "{{.ID}}" and logged["auths"]["a"] == document["auths"]["a"]
    assert logged["auths"]["https://index.docker.io/v1/"] == {"auth": auth("u", "s3")}
    out, found = without_login(logged, "docker.io")
    assert found and out["auths"] == {"a": {"auth": auth("x", "y")}}
    assert without_login(out, "docker.io") == (out, False)
    assert set(document_secrets(logged)) >= {auth("u", "s3"), "s3", auth("x", "y"), "y"}


def test_a_request_is_shown_as_curl_with_its_secrets_masked() -> None:
    argv = curl_argv("GET", "https://r.example/v2/a/manifests/1",
                     {"Accept": "x", "Authorization": "Bearer tok3n"}, output="/tmp/f")
    line = Cmd(argv, secrets=("tok3n",)).shell()
    assert line == ("curl --fail --silent --show-error --location --header 'Accept: x' "
                    "--header 'Authorization: Bearer ***' --output /tmp/f "
                    "https://r.example/v2/a/manifests/1")
    assert "tok3n" not in line
    head = curl_argv("HEAD", "http://r/v2/a/blobs/d", {})
    assert head[:6] == ["curl", "--fail", "--silent", "--show-error", "--location", "--head"]


def test_a_registry_error_body_becomes_one_short_printable_line() -> None:
    body = json.dumps({"errors": [{"code": "DENIED", "message": "no\nway\x1b[31m"}]}).encode()
    assert error_detail(body) == "DENIED: no?way?[31m"
    assert error_detail(b"<html>") == ""
    assert len(error_detail(json.dumps({"errors": [{"message": "x" * 999}]}).encode())) == 200
