"""Fixtures: the edge role applied once to a temporary prefix, served by a throwaway nginx on free ports.

Apps: web at / (localhost), api at /api/v1 on two backends with a low rate limit (5 per 60 s) and a 1k body
limit, ai at /ai on a live backend plus a dead one (passive health check), docs at /docs on its own host name
(nothing at its /).
Client addresses: 127.0.0.3 is on the maintenance allowlist, 127.0.0.4 on the rate-limit allowlist,
127.0.0.9 is a trusted proxy. Every other test client uses its own 127.0.0.x so rate-limit keys never mix.
"""

from __future__ import annotations

import pytest
from edge_stack import (
    MAINTENANCE_OPERATOR,
    RATE_LIMIT_EXEMPT,
    TRUSTED_PROXY,
    Backend,
    Edge,
    free_port,
    role_play,
    run_playbook,
)


@pytest.fixture(scope="session")
def backends():
    started = {name: Backend(name) for name in ("web", "api-1", "api-2", "ai", "docs")}
    yield started
    for backend in started.values():
        backend.stop()


@pytest.fixture(scope="session")
def edge_apps(backends):
    return [
        {"name": "web", "backends": [backends["web"].address]},
        {
            "name": "api",
            "path_prefix": "/api/v1",
            "backends": [backends["api-1"].address, backends["api-2"].address],
            "rate_limit": {"window": 60, "max": 5},
            "client_max_body_size": "1k",
        },
        # The second ai backend is a port nothing listens on: requests must still succeed.
        {"name": "ai", "path_prefix": "/ai/", "backends": [backends["ai"].address, f"127.0.0.1:{free_port()}"]},
        {
            "name": "docs",
            "server_names": ["docs.localhost"],
            "path_prefix": "/docs",
            "backends": [backends["docs"].address],
        },
    ]


@pytest.fixture(scope="session")
def edge(tmp_path_factory, edge_apps):
    """The role applied (local CA), then nginx started on its configuration; the first run's result is kept."""
    stack = Edge(tmp_path_factory.mktemp("edge"))
    stack.vars = stack.role_vars(
        edge_apps,
        edge_maintenance_allowlist=[f"{MAINTENANCE_OPERATOR}/32"],
        edge_rate_limit_allowlist=[f"{RATE_LIMIT_EXEMPT}/32"],
        edge_trusted_proxies=[f"{TRUSTED_PROXY}/32"],
        edge_maintenance_retry_after=120,
    )
    stack.first_run = run_playbook(role_play(stack.vars), tmp_path_factory.mktemp("edge-runner"))
    assert stack.first_run.failed() == 0, stack.first_run.results[-1]
    stack.start()
    yield stack
    stack.stop()
