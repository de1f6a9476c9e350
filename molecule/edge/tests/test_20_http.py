"""Plain HTTP is redirected; HTTPS answers carry the security headers and no server version."""

from conftest import curl


def test_http_redirects_to_https(hosts):
    status, headers, _body = curl(hosts("edge-api2"), "/items?x=1", scheme="http")
    assert status == 301
    assert headers["location"] == "https://edge.test/items?x=1"


def test_security_headers_and_request_id(hosts):
    status, headers, body = curl(hosts("edge-api2"), "/")
    assert status == 200, body
    assert headers["strict-transport-security"].startswith("max-age=31536000")
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"]
    assert "frame-ancestors" in headers["content-security-policy"]
    assert len(headers["x-request-id"]) >= 16


def test_server_version_hidden(hosts):
    # On an app response, on an edge error (no app at / of other.edge.test) and on the redirect.
    for path, name, scheme in [
        ("/", "edge.test", "https"),
        ("/", "other.edge.test", "https"),
        ("/", "edge.test", "http"),
    ]:
        _status, headers, body = curl(hosts("edge-api2"), path, name=name, scheme=scheme)
        assert headers.get("server") == "nginx", headers
        assert "nginx/" not in body
