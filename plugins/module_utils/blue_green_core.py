# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Blue/green switching behind nginx: the logic of ``stackops.platform.blue_green``.

Standard library only (json, fcntl; HTTP through http_probe, options through blue_green_params), so it runs on
any target with Python 3. The
module passes in the side effects it owns (running commands), and tests pass fakes for the
HTTP fetcher, the clock and sleep, so every decision here is testable without a network.

One switch, in order::

    lock  -> read state + upstream file -> nothing to do? exit unchanged
          -> health check the target colour directly (N successes in a row within a timeout)
          -> write upstream file atomically -> nginx -t (fails: restore file)
          -> graceful reload -> verify through nginx (fails: restore file, reload again)
          -> record the active colour in the state file atomically

Any failure before the state file write leaves the upstream file and the state file as
they were (byte for byte).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time

from ansible_collections.stackops.platform.plugins.module_utils.blue_green_params import (
    COLORS,
    parse_hostport,
    validate_params,
)
from ansible_collections.stackops.platform.plugins.module_utils.file_primitives import HolderLock, atomic_write
from ansible_collections.stackops.platform.plugins.module_utils.http_probe import (
    color_answer,
    http_get,
    status_is,
    wait_until_ok,
)

MODULE_NAME = "stackops.platform.blue_green"
STATE_VERSION = 1
DEFAULT_HEALTH_PATH = "/health"
SERVER_RE = re.compile(r"^\s*server\s+(\S+?)\s*(?:\s[^;]*)?;", re.MULTILINE)


class BlueGreenError(Exception):
    """A refused or failed switch; ``details`` go into the module result."""

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details


# ---------------------------------------------------------------- rendering and state


def upstream_name(name):
    return f"{name}_backend"


def render_upstream(name, color, server, keepalive=32):
    """The nginx include file: one upstream block naming only the active colour's server."""
    host, port = parse_hostport(server)
    lines = [
        f"# Managed by {MODULE_NAME}: do not edit, run the module to switch colours.",
        f"# app: {name}, active colour: {color}",
        f"upstream {upstream_name(name)} {{",
        f"    server {host}:{port};",
    ]
    if keepalive:
        lines.append(f"    keepalive {int(keepalive)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def parse_state(text):
    """State file text -> dict with a valid ``active`` colour; raise ValueError when unusable."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if data.get("active") not in COLORS:
        raise ValueError(f"active colour {data.get('active')!r} is not blue or green")
    if data.get("previous") not in (*COLORS, None):
        raise ValueError(f"previous colour {data.get('previous')!r} is not blue, green or null")
    return data


def read_text(path):
    """File content, or None when the file does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def read_state(path):
    """(state dict or None, warning or None): a missing file is a first run, a corrupt one a warning."""
    text = read_text(path)
    if text is None:
        return None, None
    try:
        return parse_state(text), None
    except ValueError as exc:
        return None, (
            f"state file {path} is unusable ({exc}): the active colour is taken from the upstream file "
            "and the state file is rewritten on the next switch"
        )


def color_from_upstream(text, upstreams):
    """Which colour an upstream file points at (by its server address), or None."""
    if not text:
        return None
    servers = SERVER_RE.findall(text)
    if len(servers) != 1:
        return None
    for color in COLORS:
        host, port = parse_hostport(upstreams[color])
        if servers[0] == f"{host}:{port}":
            return color
    return None


def build_state(name, active, previous, server, now=None):
    """State file content; ``now`` is seconds since the epoch (default: now), written as UTC."""
    now = time.time() if now is None else now
    return {
        "version": STATE_VERSION,
        "name": name,
        "active": active,
        "previous": previous,
        "upstream": server,
        "switched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "managed_by": MODULE_NAME,
    }


def dump_state(state):
    return json.dumps(state, indent=2, sort_keys=True) + "\n"


# ---------------------------------------------------------------- files


def restore_file(path, content):
    """Put back what was there before: the old content, or no file at all."""
    if read_text(path) == content:
        return
    if content is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    else:
        atomic_write(path, content)


def switch_lock(path, timeout=120.0):
    """Exclusive lock on ``<state_file>.lock`` naming its holder: one switch per app at a time."""

    def busy(info):
        return BlueGreenError(
            f"another switch ({info.holder_text}) holds {path} for more than {timeout:.0f}s: "
            "wait for it to finish and run again"
        )

    return HolderLock(path, timeout, busy=busy)


def health_url_for(params, color):
    host, port = parse_hostport(params["upstreams"][color])
    template = params.get("health_url")
    if template:
        return template.replace("{host}", host).replace("{port}", str(port)).replace("{color}", color)
    path = params.get("health_path") or DEFAULT_HEALTH_PATH
    if not path.startswith("/"):
        path = "/" + path
    return f"http://{host}:{port}{path}"


# ---------------------------------------------------------------- nginx


def nginx_base(params):
    argv = [params.get("nginx_binary") or "nginx"]
    if params.get("nginx_prefix"):
        argv += ["-p", params["nginx_prefix"]]
    if params.get("nginx_conf"):
        argv += ["-c", params["nginx_conf"]]
    return argv


def nginx_test_argv(params):
    return list(params.get("nginx_test_cmd") or [*nginx_base(params), "-t", "-q"])


def nginx_reload_argv(params):
    return list(params.get("nginx_reload_cmd") or [*nginx_base(params), "-s", "reload"])


# ---------------------------------------------------------------- the switch


def plan(params):
    """Read the current situation: what is active, what the upstream file should hold."""
    color = params["color"]
    server = params["upstreams"][color]
    current_text = read_text(params["upstream_file"])
    state, warning = read_state(params["state_file"])
    from_file = color_from_upstream(current_text, params["upstreams"])
    active_before = state["active"] if state else from_file
    wanted = render_upstream(params["name"], color, server, params.get("keepalive", 32))
    return {
        "color": color,
        "server": server,
        "current_text": current_text,
        "wanted_text": wanted,
        "state": state,
        "warning": warning,
        "active_before": active_before,
        "file_ok": current_text == wanted,
        "state_ok": bool(state) and state.get("active") == color and state.get("upstream") == server,
    }


def switch(params, run, check_mode=False, **hooks):
    """Do (or in check mode, predict) one switch; return the result dict or raise BlueGreenError.

    ``run(argv) -> (rc, stdout, stderr)`` runs a command. ``hooks`` may replace ``fetch(url, timeout)
    -> Response``, ``clock()`` and ``sleep(seconds)`` (tests do). With ``routing_dir`` the switch moves symlinks
    and never reloads nginx (blue_green_routed); without it, the upstream file is rewritten and nginx reloaded.
    """
    if params.get("routing_dir"):
        # Imported here: blue_green_routed builds on this module's Switcher.
        from ansible_collections.stackops.platform.plugins.module_utils.blue_green_routed import RoutedSwitcher  # noqa: PLC0415

        return RoutedSwitcher(params, run, check_mode, **hooks).execute()
    return Switcher(params, run, check_mode, **hooks).execute()


class Switcher:
    """One switch of one app; holds the options and the side-effect functions."""

    def __init__(self, params, run, check_mode=False, *, fetch=http_get, clock=time.monotonic, sleep=time.sleep):
        self.started = clock()
        self.params = validate_params(params)
        self.run = run
        self.check_mode = check_mode
        self.fetch = fetch
        self.clock = clock
        self.sleep = sleep
        self.plan = None
        self.result = None

    def execute(self):
        params = self.params
        up_dir = os.path.dirname(os.path.abspath(params["upstream_file"]))
        if not os.path.isdir(up_dir):
            raise BlueGreenError(
                f"directory {up_dir} of upstream_file does not exist: create it or change upstream_file"
            )
        if self.check_mode:
            return self._execute_locked()
        state_dir = os.path.dirname(os.path.abspath(params["state_file"]))
        os.makedirs(state_dir, mode=0o755, exist_ok=True)
        with switch_lock(params["state_file"] + ".lock"):
            return self._execute_locked()

    def _done(self):
        self.result["duration"] = round(self.clock() - self.started, 3)
        return self.result

    def _execute_locked(self):
        params = self.params
        p = self.plan = plan(params)
        if p["current_text"] and "\n# stackops routing: " in "\n" + p["current_text"]:
            raise BlueGreenError(
                f"{params['upstream_file']} holds the symlink routing layout (a '# stackops routing:' line): pass "
                "routing_dir (the directory that line names) to switch without a reload. Nothing was changed.",
                active=p["active_before"],
                switched=False,
            )
        color, server = p["color"], p["server"]
        self.result = {
            "changed": False,
            "switched": False,
            "previous": p["active_before"],
            "active": color,
            "upstream": server,
            "upstream_name": upstream_name(params["name"]),
            "upstream_file": params["upstream_file"],
            "state_file": params["state_file"],
            "health_checks": 0,
            "health": None,
            "verify_checks": 0,
            "warnings": [p["warning"]] if p["warning"] else [],
            "diff": {
                "before": p["current_text"] or "",
                "after": p["wanted_text"],
                "before_header": params["upstream_file"],
                "after_header": params["upstream_file"],
            },
        }
        if p["file_ok"] and p["state_ok"]:
            return self._done()

        self.result["changed"] = True
        self.result["switched"] = p["active_before"] != color or not p["file_ok"]
        if params.get("force"):
            self.result["warnings"].append(f"force=true: {color} was switched to without a health check")
        else:
            self._health_check()
        if self.check_mode:
            return self._done()

        # Also when only the state disagrees: a run that died between writing the file and reloading
        # nginx left a correct file that nginx may not serve yet, so test and reload in any case.
        self._apply_upstream()
        previous = p["active_before"] if p["active_before"] != color else (p["state"] or {}).get("previous")
        atomic_write(params["state_file"], dump_state(build_state(params["name"], color, previous, server)))
        return self._done()

    def _health_check(self):
        params, color = self.params, self.plan["color"]
        url = health_url_for(params, color)
        expected, threshold, timeout = params["expected_status"], params["healthy_threshold"], params["health_timeout"]
        health = wait_until_ok(
            self.fetch,
            url,
            status_is(expected),
            threshold=threshold,
            timeout=timeout,
            interval=params["health_interval"],
            clock=self.clock,
            sleep=self.sleep,
        )
        self.result["health_checks"] = health.attempts
        self.result["health"] = health.as_dict()
        if not health.ok:
            details = {k: v for k, v in self._done().items() if k not in ("changed", "diff")}
            details.update(active=self.plan["active_before"], switched=False)
            raise BlueGreenError(
                f"{color} ({self.plan['server']}) is not healthy: {url} did not answer {expected} "
                f"{threshold} times in a row within {timeout}s ({health.attempts} attempts); last answer: "
                f"{health.last.describe()}. Nothing was changed: fix the {color} deployment or raise "
                "health_timeout.",
                **details,
            )

    def _run(self, argv):
        try:
            rc, out, err = self.run(argv)
        except OSError as exc:
            return 127, f"cannot run {argv[0]}: {exc}"
        return rc, (err or out or "").strip()

    def _apply_upstream(self):
        params, p = self.params, self.plan
        upstream_file = params["upstream_file"]
        old = p["current_text"]
        if not p["file_ok"]:
            atomic_write(upstream_file, p["wanted_text"])
        test_argv = nginx_test_argv(params)
        rc, output = self._run(test_argv)
        if rc != 0:
            restore_file(upstream_file, old)
            raise BlueGreenError(
                f"nginx rejected the configuration with {upstream_file} pointing at {p['color']} "
                f"({' '.join(test_argv)} exited {rc}): {output}. The upstream file was restored and nginx not "
                "reloaded: fix the nginx configuration (or upstreams) and run again.",
                nginx_stderr=output,
            )
        reload_argv = nginx_reload_argv(params)
        rc, output = self._run(reload_argv)
        if rc != 0:
            restore_file(upstream_file, old)
            raise BlueGreenError(
                f"nginx reload failed ({' '.join(reload_argv)} exited {rc}): {output}. The upstream file was "
                "restored: check that nginx is running and that nginx_reload_cmd / nginx_conf / nginx_prefix "
                "match how it was started.",
                nginx_stderr=output,
            )
        if params.get("verify_url"):
            self._verify()

    def _verify_fetch(self):
        """The fetch for the verify request through nginx; the colours' health checks never send verify_host."""
        host = self.params.get("verify_host")
        # A site chosen by server_name (several apps on one nginx address) needs its Host header.
        return (lambda url, timeout: self.fetch(url, timeout, headers={"Host": host})) if host else self.fetch

    def _verify(self):
        params, p = self.params, self.plan
        color, header, expected = p["color"], params.get("verify_header"), params["expected_status"]
        verify = wait_until_ok(
            self._verify_fetch(),
            params["verify_url"],
            color_answer(expected, header, color),
            threshold=1,
            timeout=params["verify_timeout"],
            interval=min(params["health_interval"], 0.5),
            clock=self.clock,
            sleep=self.sleep,
        )
        self.result["verify_checks"] = verify.attempts
        if verify.ok:
            return
        wanted = f"status {expected}" + (f" with {header}: {color}" if header else "")
        restore_file(params["upstream_file"], p["current_text"])
        rc, output = self._run(nginx_reload_argv(params))
        rolled_back = (
            " The upstream file was restored and nginx reloaded with it."
            if rc == 0
            else f" The upstream file was restored but the reload failed: {output}."
        )
        raise BlueGreenError(
            f"nginx does not serve {color} after the switch: {params['verify_url']} did not answer {wanted} "
            f"within {params['verify_timeout']}s ({verify.attempts} attempts); last answer: "
            f"{verify.last.describe()}.{rolled_back} Check that the nginx site proxies to "
            f"{upstream_name(params['name'])} and includes {params['upstream_file']}.",
            verify=verify.as_dict(),
        )
