"""The edge role refuses bad input with a message naming it, before anything changes; nginx -t refusals restore.

Runs against localhost with every path in a temporary prefix: a role that got past its checks would write files
and report changed tasks, so changed == 0 and an empty prefix prove the refusal came first.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from edge_stack import OPENSSL, Edge, failure_messages, role_play

APPS = [
    {"name": "web", "backends": ["127.0.0.1:9"]},
    {"name": "api", "path_prefix": "/api/v1", "backends": ["127.0.0.1:9"], "rate_limit": {"window": 60, "max": 5}},
]


def key_pair(directory: Path, name: str, subject: str = "/CN=localhost") -> tuple[str, str]:
    """A self-signed certificate and its key (PEM texts) made with the openssl CLI."""
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    subprocess.run(
        [OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
         "-subj", subject, "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert.read_text(), key.read_text()


def ca_signed(directory: Path, name: str) -> tuple[str, str, str]:
    """A certificate signed by a throwaway CA (not self-signed), its key, and the CA certificate as the chain."""
    ca_cert, ca_key = directory / "ca.crt", directory / "ca.key"
    if not ca_cert.exists():
        key_pair(directory, "ca", subject="/CN=Throwaway Test CA")
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.crt"
    subprocess.run(
        [OPENSSL, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(csr)],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [OPENSSL, "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
         "-days", "30", "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert.read_text(), key.read_text(), ca_cert.read_text()


@pytest.fixture
def stack(tmp_path):
    return Edge(tmp_path / "edge")


def written(stack: Edge) -> list[str]:
    """Files the role would have written under the prefix (the test's own nginx.conf aside)."""
    return sorted(str(p.relative_to(stack.prefix)) for p in stack.prefix.rglob("*") if p.is_file() and p != stack.conf)


def refused(playbook, stack, role_vars, *named):
    run = playbook(role_play(role_vars))
    assert run.failed() == 1
    assert run.changed() == 0
    assert written(stack) == []
    message = failure_messages(run)
    for text in named:
        assert text in message, message
    return message


def test_production_without_a_certificate_is_refused(playbook, stack):
    role_vars = stack.role_vars(APPS, edge_environment="production", edge_tls_local_ca=False)
    refused(playbook, stack, role_vars, "edge_tls_certificate", "edge_tls_private_key", "production")


def test_production_refuses_the_local_ca(playbook, stack):
    role_vars = stack.role_vars(APPS, edge_environment="production")
    refused(playbook, stack, role_vars, "edge_tls_local_ca", "production", "edge_tls_allow_self_signed")
    assert not stack.ca_dir.exists()


def test_production_refuses_a_self_signed_certificate(playbook, stack, tmp_path):
    cert, key = key_pair(tmp_path, "self")
    role_vars = stack.role_vars(
        APPS,
        edge_environment="production",
        edge_tls_local_ca=False,
        edge_tls_certificate=cert,
        edge_tls_private_key=key,
    )
    refused(playbook, stack, role_vars, "self-signed", "edge_tls_allow_self_signed")


def test_a_key_that_does_not_match_its_certificate_is_refused(playbook, stack, tmp_path):
    cert = key_pair(tmp_path, "one")[0]
    other_key = key_pair(tmp_path, "two")[1]
    role_vars = stack.role_vars(
        APPS, edge_tls_local_ca=False, edge_tls_certificate=cert, edge_tls_private_key=other_key
    )
    message = refused(playbook, stack, role_vars, "does not match", "edge_tls_private_key")
    assert "PRIVATE KEY" not in message


def test_two_tls_sources_are_refused(playbook, stack, tmp_path):
    cert, key = key_pair(tmp_path, "one")
    role_vars = stack.role_vars(APPS, edge_tls_certificate=cert, edge_tls_private_key=key)
    refused(playbook, stack, role_vars, "exactly one TLS source", "local CA")


@pytest.mark.parametrize(
    ("rate_limit", "named"),
    [
        ({"window": 60, "max": 0}, "max=0"),
        ({"window": 60, "max": -5}, "max=-5"),
        ({"window": 0, "max": 10}, "window=0"),
        ({"window": -60, "max": 10}, "window=-60"),
    ],
)
def test_rate_limit_max_or_window_not_above_zero_is_refused(playbook, stack, rate_limit, named):
    apps = [APPS[0], {**APPS[1], "rate_limit": rate_limit}]
    refused(playbook, stack, stack.role_vars(apps), "edge_apps entry api", named)


def test_two_apps_on_the_same_host_and_path_are_refused(playbook, stack):
    apps = [*APPS, {"name": "api2", "path_prefix": "/api/v1/", "backends": ["127.0.0.1:9"]}]
    refused(playbook, stack, stack.role_vars(apps), "localhost/api/v1 (api and api2)")


def test_same_path_on_different_hosts_is_accepted_by_preflight(playbook, stack):
    apps = [*APPS, {"name": "docs", "server_names": ["docs.localhost"], "backends": ["127.0.0.1:9"]}]
    run = playbook(role_play(stack.role_vars(apps, edge_tls_local_ca=False)))
    # Gets past every route check and stops only at the missing TLS source.
    assert "claimed twice" not in failure_messages(run)
    assert "exactly one TLS source" in failure_messages(run)


def test_hsts_below_a_year_is_refused(playbook, stack):
    refused(playbook, stack, stack.role_vars(APPS, edge_hsts_max_age=86400), "edge_hsts_max_age", "got 86400")


def test_hsts_preload_without_include_subdomains_is_refused(playbook, stack):
    refused(playbook, stack, stack.role_vars(APPS, edge_hsts_preload=True), "edge_hsts_preload needs")


def test_no_apps_is_refused(playbook, stack):
    refused(playbook, stack, stack.role_vars([]), "edge_apps is empty")


def test_bad_backend_and_allowlist_are_refused(playbook, stack):
    apps = [{"name": "web", "backends": ["no port here"]}]
    refused(playbook, stack, stack.role_vars(apps), "edge_apps entry web", "no port here")
    refused(
        playbook,
        stack,
        stack.role_vars(APPS, edge_trusted_proxies=["10.0.0.0/8", "everyone"]),
        "edge_trusted_proxies",
        "everyone",
    )


def test_nginx_refusal_restores_the_previous_files(playbook, stack, tmp_path):
    # Production accepts a CA-signed certificate; its chain turns OCSP stapling on.
    cert, key, chain = ca_signed(tmp_path, "good")
    good = stack.role_vars(
        APPS, edge_environment="production", edge_tls_local_ca=False,
        edge_tls_certificate=cert, edge_tls_private_key=key, edge_tls_chain=chain,
    )  # fmt: skip
    first = playbook(role_play(good))
    assert first.failed() == 0, failure_messages(first)
    assert "ssl_stapling on;" in stack.site.read_text()
    assert (stack.prefix / "etc" / "tls" / "chain.pem").read_text().strip() == chain.strip()
    before = {p: (stack.prefix / p).read_bytes() for p in written(stack)}
    other_cert, other_key = ca_signed(tmp_path, "other")[:2]
    # Passes every role check; nginx -t then cannot resolve the listen address.
    bad = {**good, "edge_tls_certificate": other_cert, "edge_tls_private_key": other_key,
           "edge_listen_address": "no-such-host.invalid"}  # fmt: skip
    run = playbook(role_play(bad))
    assert run.failed() == 1
    assert "nginx rejected the new configuration" in failure_messages(run)
    assert "no-such-host.invalid" in failure_messages(run)
    after = {p: (stack.prefix / p).read_bytes() for p in written(stack)}
    assert after == before
    assert (stack.prefix / "etc" / "tls" / "edge.key").stat().st_mode & 0o777 == 0o600


def test_check_mode_writes_nothing(playbook, stack):
    run = playbook(role_play(stack.role_vars(APPS)), check=True)
    assert run.failed() == 0
    assert run.changed() > 0
    assert written(stack) == []
    assert not stack.ca_dir.exists()
