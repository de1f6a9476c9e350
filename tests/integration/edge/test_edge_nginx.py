"""The edge role's configuration, served by a real nginx: redirects, TLS, headers, routing, limits, maintenance."""

from __future__ import annotations

import re
import stat

import pytest
from edge_stack import MAINTENANCE_OPERATOR, RATE_LIMIT_EXEMPT, TRUSTED_PROXY, role_play, run_playbook, s_client


def test_http_is_redirected_to_https_with_301(edge):
    answer = edge.request("/api/v1/items?page=2", https=False)
    assert answer.status == 301
    assert answer.header("Location") == f"https://localhost:{edge.https_port}/api/v1/items?page=2"
    assert answer.header("Server") == "nginx"


@pytest.mark.parametrize(("host", "path"), [("localhost", "/"), ("localhost", "/api/v1/x"), ("docs.localhost", "/")])
def test_hsts_security_headers_and_hidden_version(edge, host, path):
    answer = edge.request(path, host=host, source=RATE_LIMIT_EXEMPT)
    assert answer.header("Strict-Transport-Security") == "max-age=31536000"
    assert answer.header("X-Content-Type-Options") == "nosniff"
    assert answer.header("Referrer-Policy") == "strict-origin-when-cross-origin"
    assert answer.header("Content-Security-Policy") == "frame-ancestors 'none'"
    assert answer.header("X-Frame-Options") == "DENY"
    # server_tokens off: no version, and the backend's own Server header never shows.
    assert answer.header("Server") == "nginx"


@pytest.mark.parametrize(
    ("host", "path", "expected"),
    [
        ("localhost", "/", {"web"}),
        ("localhost", "/index.html", {"web"}),
        ("localhost", "/api/v1", {"api-1", "api-2"}),
        ("localhost", "/api/v1/users/7", {"api-1", "api-2"}),
        ("localhost", "/api/v10", {"web"}),
        ("localhost", "/ai/complete", {"ai"}),
        ("localhost", "/aix", {"web"}),
        ("localhost", "/docs/guide", {"web"}),
        ("docs.localhost", "/docs/guide", {"docs"}),
        ("docs.localhost", "/docs", {"docs"}),
        ("docs.localhost", "/", None),
        ("docs.localhost", "/api/v1/x", None),
    ],
)
def test_routing_by_host_and_path_prefix(edge, host, path, expected):
    answer = edge.request(path, host=host, source=RATE_LIMIT_EXEMPT)
    if expected is None:
        # Nothing claims this path on this host: 404 from the edge itself, never another host's app.
        assert answer.status == 404
        assert b"backend" not in answer.body
        return
    assert answer.status == 200
    body = answer.json()
    assert body["backend"] in expected
    # The path reaches the app unchanged.
    assert body["path"] == path


def test_one_upstream_spreads_over_its_backends(edge):
    served = {edge.request("/api/v1/spread", source=RATE_LIMIT_EXEMPT).json()["backend"] for dummy in range(8)}
    assert served == {"api-1", "api-2"}


def test_a_dead_backend_is_skipped_without_failed_requests(edge):
    answers = [edge.request(f"/ai/{n}", source=RATE_LIMIT_EXEMPT) for n in range(8)]
    assert [a.status for a in answers] == [200] * 8
    assert {a.json()["backend"] for a in answers} == {"ai"}


def test_request_id_made_at_the_edge_passed_on_and_returned(edge):
    answer = edge.request("/api/v1/rid", source=RATE_LIMIT_EXEMPT, headers={"X-Request-ID": "client-chosen-id"})
    returned = answer.header("X-Request-ID")
    assert re.fullmatch(r"[0-9a-f]{32}", returned), returned
    # The app received the edge's id, not the client's; the client gets the same id back, not the app's.
    assert answer.json()["headers"]["x-request-id"] == returned
    assert answer.headers.get_all("X-Request-ID") == [returned]


def test_request_id_from_a_trusted_proxy_is_kept(edge):
    answer = edge.request(
        "/api/v1/rid",
        source=TRUSTED_PROXY,
        headers={"X-Request-ID": "lb-1234", "X-Forwarded-For": "198.51.100.50"},
    )
    assert answer.header("X-Request-ID") == "lb-1234"
    assert answer.json()["headers"]["x-request-id"] == "lb-1234"


def test_forwarded_headers_to_the_app(edge):
    answer = edge.request("/api/v1/fwd", source=RATE_LIMIT_EXEMPT, headers={"X-Forwarded-For": "203.0.113.9"})
    received = answer.json()["headers"]
    # An untrusted client's X-Forwarded-For is dropped, not passed on.
    assert received["x-forwarded-for"] == RATE_LIMIT_EXEMPT
    assert received["x-real-ip"] == RATE_LIMIT_EXEMPT
    assert received["x-forwarded-proto"] == "https"


def test_body_size_limit_per_route(edge):
    body = b"x" * 4096
    assert edge.request("/api/v1/upload", method="POST", body=body, source=RATE_LIMIT_EXEMPT).status == 413
    assert edge.request("/upload", method="POST", body=body, source=RATE_LIMIT_EXEMPT).status == 200


def test_rate_limit_first_max_pass_then_429_with_retry_after(edge):
    client = "127.0.0.30"
    answers = [edge.request("/api/v1/limited", source=client) for dummy in range(8)]
    assert [a.status for a in answers[:5]] == [200] * 5
    assert [a.status for a in answers[5:]] == [429] * 3
    # 5 per 60 s is 5r/m: the next slot opens in 12 s.
    assert answers[5].header("Retry-After") == "12"
    assert answers[5].header("Strict-Transport-Security") == "max-age=31536000"
    # Another client address is unaffected, and so is another app for the same client.
    assert edge.request("/api/v1/limited", source="127.0.0.31").status == 200
    assert edge.request("/", source=client).status == 200


def test_spoofed_forwarded_for_from_an_untrusted_peer_does_not_change_the_key(edge):
    client = "127.0.0.32"
    statuses = [
        edge.request("/api/v1/spoof", source=client, headers={"X-Forwarded-For": f"198.51.100.{n}"}).status
        for n in range(8)
    ]
    assert statuses == [200] * 5 + [429] * 3


def test_forwarded_for_from_a_trusted_proxy_keys_on_the_real_client(edge):
    def through_proxy(client_address):
        return edge.request("/api/v1/proxied", source=TRUSTED_PROXY, headers={"X-Forwarded-For": client_address})

    statuses = [through_proxy("198.51.100.7").status for dummy in range(6)]
    assert statuses == [200] * 5 + [429]
    # Same proxy, another real client: its own key.
    answer = through_proxy("198.51.100.8")
    assert answer.status == 200
    assert answer.json()["headers"]["x-real-ip"] == "198.51.100.8"


def test_rate_limit_allowlist_is_never_limited(edge):
    assert {edge.request("/api/v1/exempt", source=RATE_LIMIT_EXEMPT).status for dummy in range(12)} == {200}


def test_maintenance_flag_answers_503_with_retry_after_and_page(edge):
    flag = edge.flag("web")
    flag.write_text("maintenance\n")
    try:
        answer = edge.request("/", source="127.0.0.40")
        assert answer.status == 503
        assert answer.header("Retry-After") == "120"
        assert b"Down for maintenance" in answer.body
        assert answer.header("Strict-Transport-Security") == "max-age=31536000"
        # Only the flagged app: the api keeps serving.
        assert edge.request("/api/v1/m", source="127.0.0.40").status == 200
        # An operator on the allowlist still reaches the app.
        operator = edge.request("/", source=MAINTENANCE_OPERATOR)
        assert operator.status == 200
        assert operator.json()["backend"] == "web"
        assert operator.header("X-Frame-Options") == "DENY"
    finally:
        flag.unlink()
    assert edge.request("/", source="127.0.0.40").status == 200


@pytest.mark.parametrize(
    ("option", "accepted"),
    [("-tls1", False), ("-tls1_1", False), ("-tls1_2", True), ("-tls1_3", True)],
)
def test_tls_versions(edge, option, accepted):
    done = s_client(edge.https_port, option, "-cipher", "DEFAULT@SECLEVEL=0", "-CAfile", str(edge.ca_cert))
    negotiated = re.search(r"New, (TLSv[0-9.]+), Cipher is ", done.stdout)
    if accepted:
        assert done.returncode == 0, done.stderr
        assert negotiated and negotiated.group(1) == {"-tls1_2": "TLSv1.2", "-tls1_3": "TLSv1.3"}[option]
        assert "Verify return code: 0 (ok)" in done.stdout
    else:
        assert done.returncode != 0
        assert "alert protocol version" in done.stderr or "no protocols available" in done.stderr, done.stderr
        assert negotiated is None
        assert "New, (NONE), Cipher is (NONE)" in done.stdout


def test_only_intermediate_ciphers_on_tls12(edge):
    weak = s_client(edge.https_port, "-tls1_2", "-cipher", "AES128-SHA:DES-CBC3-SHA:@SECLEVEL=0")
    assert weak.returncode != 0
    strong = s_client(edge.https_port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert strong.returncode == 0, strong.stderr


def test_tls_files_and_logs(edge):
    key = edge.prefix / "etc" / "tls" / "edge.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (edge.ca_dir / "stackops-edge-ca.crt").read_text() == edge.ca_cert.read_text()
    edge.request("/api/v1/logged", source=RATE_LIMIT_EXEMPT)
    line = (edge.prefix / "logs" / "edge-api.access.log").read_text().splitlines()[-1]
    assert '"GET /api/v1/logged HTTP/1.1" 200' in line
    for field in ("req_id=", "upstream=127.0.0.1:", "rt=", "urt="):
        assert field in line


def test_second_run_changes_nothing(edge, tmp_path):
    again = run_playbook(role_play(edge.vars), tmp_path / "again")
    assert again.failed() == 0
    assert again.changed() == 0, [e["task"] for e in again.results if e["res"].get("changed")]
    assert edge.first_run.changed() > 0


def test_health_path_is_not_rate_limited_nor_logged(edge):
    client = "127.0.0.33"
    answers = [edge.request("/api/v1/health", source=client) for dummy in range(8)]
    assert [a.status for a in answers] == [200] * 8
    assert answers[0].json()["path"] == "/api/v1/health"
    assert "/api/v1/health" not in (edge.prefix / "logs" / "edge-api.access.log").read_text()
    # The same client's ordinary requests still are limited.
    statuses = [edge.request("/api/v1/after-health", source=client).status for dummy in range(6)]
    assert statuses == [200] * 5 + [429]


def test_no_compression_over_tls(edge):
    # BREACH: the edge turns gzip off although the http block (as Debian's) turns it on; nginx's own 404 page is
    # text/html, long enough and of a status gzip compresses.
    answer = edge.request("/", host="docs.localhost", source=RATE_LIMIT_EXEMPT, headers={"Accept-Encoding": "gzip"})
    assert answer.status == 404
    assert answer.header("Content-Encoding") is None
    assert b"<html>" in answer.body
