"""Rate limit of the second app (20 requests per 60 s per client address, burst max - 1): within one window the
first 20 pass and the rest get 429 with Retry-After; another address is unaffected; a spoofed X-Forwarded-For from
an untrusted peer is still counted as its sender (runs before any other test sends to /other)."""

from conftest import burst

MAX = 20


def test_rate_limit_per_address_and_spoofing(hosts):
    client, other_client = hosts("edge-api2"), hosts("edge-api1")
    first = burst(client, "/other/x", MAX + 10)
    statuses = [status for status, _retry in first]
    # Passed = reached the app: the edge keeps the path and the sample app answers 404 for /other/x
    # (/other/health is the probe path, which the edge does not limit).
    assert statuses[:MAX] == [404] * MAX, f"refused within the first {MAX}: {first}"
    assert statuses[MAX:] == [429] * 10, first
    assert all(retry.isdigit() and int(retry) >= 1 for _status, retry in first[MAX:]), first
    # The same sender claiming to be someone else (edge_trusted_proxies is empty): still limited.
    spoofed = burst(client, "/other/x", 5, extra=["-H", "X-Forwarded-For: 203.0.113.77"])
    assert [s for s, _r in spoofed] == [429] * 5, spoofed
    # Another client address has its own allowance.
    others = burst(other_client, "/other/x", 5)
    assert 429 not in [s for s, _r in others], others
