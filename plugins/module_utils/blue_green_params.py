# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of stackops.platform.blue_green: defaults, and the checks the argument spec cannot make (names, colours,
host:port upstreams, timeouts, commands, weights). Every refusal is a ValueError naming the bad value.
"""

from __future__ import annotations

import ipaddress
import os
import re

from ansible_collections.stackops.platform.plugins.module_utils import blue_green_routing as routing

COLORS = ("blue", "green")
DEFAULT_UPSTREAM_DIR = "/etc/nginx/conf.d"
DEFAULT_STATE_DIR = "/var/lib/stackops/blue_green"
# Defaults of the optional module options (the module's argument_spec repeats them for the docs).
DEFAULTS = {
    "upstream_file": None,
    "state_file": None,
    "keepalive": 32,
    "health_path": None,
    "health_url": None,
    "healthy_threshold": 3,
    "health_timeout": 60.0,
    "health_interval": 1.0,
    "expected_status": 200,
    "verify_url": None,
    "verify_header": None,
    "verify_host": None,
    "verify_timeout": 10.0,
    "nginx_binary": "nginx",
    "nginx_conf": None,
    "nginx_prefix": None,
    "nginx_test_cmd": None,
    "nginx_reload_cmd": None,
    "force": False,
    "routing_dir": None,
    "weight": None,
}

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


def parse_hostport(value):
    """Split ``host:port`` (host: name, IPv4 or [IPv6]) or raise ValueError naming the value."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not host:port (example: 127.0.0.1:8001)")
    value = value.strip()
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        if not sep:
            raise ValueError(f"{value!r} is not [ipv6]:port (example: [::1]:8001)")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in {value!r} is not an IPv6 address") from None
        host = f"[{host}]"
    else:
        host, sep, port = value.rpartition(":")
        if not sep or not host:
            raise ValueError(f"{value!r} is not host:port (example: 127.0.0.1:8001)")
        if not HOSTNAME_RE.match(host):
            raise ValueError(f"host {host!r} in {value!r} is not a host name or IPv4 address")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"port {port!r} in {value!r} is not a port number (1-65535)")
    return host, int(port)


def validate_params(params):
    """Check what the argument spec cannot; return the option values filled in, or raise ValueError."""
    params = {**DEFAULTS, **{k: v for k, v in params.items() if v is not None}}
    name = params["name"]
    if not NAME_RE.match(name or ""):
        raise ValueError(
            f"name {name!r} is not usable in an nginx upstream name: use letters, digits, '_' or '-' (max 63)"
        )
    color = params["color"]
    if color not in COLORS:
        raise ValueError(f"color {color!r} is unknown: use one of {', '.join(COLORS)}")
    upstreams = params["upstreams"] or {}
    keys = sorted(upstreams)
    if keys != sorted(COLORS):
        raise ValueError(f"upstreams must have exactly the keys blue and green, got {keys}")
    for key in COLORS:
        try:
            parse_hostport(upstreams[key])
        except ValueError as exc:
            raise ValueError(f"upstreams.{key}: {exc}") from None
    if parse_hostport(upstreams["blue"]) == parse_hostport(upstreams["green"]):
        raise ValueError(
            f"upstreams.blue and upstreams.green are both {upstreams['blue']}: give each colour its own port"
        )
    if params.get("healthy_threshold", 1) < 1:
        raise ValueError(f"healthy_threshold {params['healthy_threshold']} must be at least 1")
    for opt in ("health_timeout", "verify_timeout"):
        if params.get(opt) is not None and params[opt] <= 0:
            raise ValueError(f"{opt} {params[opt]} must be more than 0 seconds")
    if params.get("health_interval") is not None and params["health_interval"] < 0:
        raise ValueError(f"health_interval {params['health_interval']} must not be negative")
    if params.get("keepalive") is not None and params["keepalive"] < 0:
        raise ValueError(f"keepalive {params['keepalive']} must be 0 (off) or more")
    status = params.get("expected_status")
    if status is not None and not 100 <= status <= 599:
        raise ValueError(f"expected_status {status} is not an HTTP status code")
    for opt in ("health_url", "verify_url"):
        url = params.get(opt)
        if url and not url.lower().startswith(("http://", "https://")):
            raise ValueError(f"{opt} {url!r} must start with http:// or https://")
    for opt in ("nginx_test_cmd", "nginx_reload_cmd"):
        if params.get(opt) is not None and not params[opt]:
            raise ValueError(f"{opt} must not be an empty list: omit it to use the default command")
    if params.get("weight") is not None and not params.get("routing_dir"):
        raise ValueError(
            f"weight {params['weight']} needs routing_dir: only the symlink routing splits traffic between colours"
        )
    if params.get("routing_dir"):
        params["weight"] = routing.validate_weight(params.get("weight"))
    filled = dict(params)
    filled["upstream_file"] = params.get("upstream_file") or os.path.join(DEFAULT_UPSTREAM_DIR, f"{name}_upstream.conf")
    filled["state_file"] = params.get("state_file") or os.path.join(DEFAULT_STATE_DIR, f"{name}.json")
    return filled
