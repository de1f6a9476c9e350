# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The reload-free switch of ``stackops.platform.blue_green`` (``routing_dir`` set): see blue_green_routing.

One switch or canary step, in order::

    lock -> the routing file routes through routing_dir? (else fail: run the api role once, it migrates)
         -> read the live slot pattern + state -> nothing to do? exit unchanged
         -> health check the target colour directly when its share grows
         -> build sets/<pattern> -> rename split onto it (atomic; nginx is neither tested nor reloaded)
         -> check every slot resolves to its colour -> verify through nginx (fails: split renamed back)
         -> record active colour, weights and canary in the state file atomically

``weight`` is the target colour's share in percent (steps of 10). The state's ``active`` colour is the one that
serves everything, or during a canary the one that served before it (it stays the rollback target until the
canary reaches 100 %). A failure leaves ``split`` and the state file as they were.
"""

from __future__ import annotations

import os

from ansible_collections.stackops.platform.plugins.module_utils import blue_green_routing as routing
from ansible_collections.stackops.platform.plugins.module_utils.blue_green_core import (
    BlueGreenError,
    Switcher,
    build_state,
    dump_state,
    read_state,
    read_text,
    switch_lock,
)
from ansible_collections.stackops.platform.plugins.module_utils.file_primitives import atomic_write
from ansible_collections.stackops.platform.plugins.module_utils.http_probe import color_answer, status_is, wait_until_ok


def primary_after(color, weight, active_before):
    """The state's active colour after routing ``weight`` % to ``color``."""
    if weight == 100:
        return color
    if active_before in routing.LETTERS and active_before != color:
        return active_before
    return routing.other(color)


class RoutedSwitcher(Switcher):
    """One reload-free switch (or canary step) of one app."""

    def execute(self):
        params = self.params
        routing_dir = os.path.abspath(params["routing_dir"])
        parent = os.path.dirname(routing_dir)
        if not os.path.isdir(parent):
            raise BlueGreenError(f"directory {parent} of routing_dir does not exist: create it or change routing_dir")
        if self.check_mode:
            return self._execute_locked()
        os.makedirs(os.path.dirname(os.path.abspath(params["state_file"])), mode=0o755, exist_ok=True)
        with switch_lock(params["state_file"] + ".lock"):
            return self._execute_locked()

    def _plan(self):
        params = self.params
        routing_dir = os.path.abspath(params["routing_dir"])
        text = read_text(params["upstream_file"])
        if not routing.routing_file_ok(text, routing_dir):
            raise BlueGreenError(
                f"{params['upstream_file']} does not route through {routing_dir} (no line "
                f"{routing.marker(routing_dir)!r}): nginx still has the reload-based layout. Run the api role "
                "(playbooks/site.yml) once: it writes the routing layout and reloads nginx that one time. "
                "Nothing was changed.",
                active=None,
                switched=False,
            )
        try:
            pattern_before = routing.read_pattern(routing_dir)
        except ValueError as exc:
            raise BlueGreenError(f"routing_dir {routing_dir}: {exc}. Nothing was changed.") from None
        state, warning = read_state(params["state_file"])
        color, weight = routing.normalise(params["color"], params["weight"])
        active_before = (state or {}).get("active") or routing.sole_color(pattern_before)
        wanted = routing.pattern_for(color, weight)
        active = primary_after(color, weight, active_before)
        canary = {"color": color, "weight": weight} if weight < 100 else None
        state_ok = bool(state) and (
            state.get("active"),
            state.get("routing"),
            state.get("canary"),
            state.get("upstream"),
        ) == (active, wanted, canary, params["upstreams"][active])
        return {
            "routing_dir": routing_dir,
            "color": color,
            "weight": weight,
            "server": params["upstreams"][color],
            "pattern_before": pattern_before,
            "wanted": wanted,
            "state": state,
            "warning": warning,
            "active_before": active_before,
            "active": active,
            "canary": canary,
            "routing_ok": pattern_before == wanted and routing.slot_colors(routing_dir) == self._colors(wanted),
            "state_ok": state_ok,
        }

    @staticmethod
    def _colors(pattern):
        return [routing.COLOR_OF[letter] for letter in pattern]

    def _execute_locked(self):
        params = self.params
        p = self.plan = self._plan()
        before = (p["pattern_before"] and routing.weights_of(p["pattern_before"])) or {}
        self.result = {
            "changed": False,
            "switched": False,
            "previous": p["active_before"],
            "active": p["active"],
            "upstream": params["upstreams"][p["active"]],
            "upstream_name": f"{params['name']}_{p['active']}",
            "upstream_file": params["upstream_file"],
            "state_file": params["state_file"],
            "routing_dir": p["routing_dir"],
            "routing": p["wanted"],
            "routing_before": p["pattern_before"],
            "weight": routing.weights_of(p["wanted"])[params["color"]],
            "weights": routing.weights_of(p["wanted"]),
            "weights_before": before,
            "canary": p["canary"],
            "reloaded": False,
            "health_checks": 0,
            "health": None,
            "verify_checks": 0,
            "warnings": [p["warning"]] if p["warning"] else [],
            "diff": {
                "before": routing.describe(p["pattern_before"]) + "\n",
                "after": routing.describe(p["wanted"]) + "\n",
                "before_header": os.path.join(p["routing_dir"], routing.SPLIT),
                "after_header": os.path.join(p["routing_dir"], routing.SPLIT),
            },
        }
        if p["routing_ok"] and p["state_ok"]:
            return self._done()
        self.result["changed"] = True
        self.result["switched"] = not p["routing_ok"]
        grows = before.get(p["color"], 0) < p["weight"]
        if params.get("force"):
            self.result["warnings"].append(f"force=true: {p['color']} was routed to without a health check")
        elif grows:
            self._health_check()
        if self.check_mode:
            return self._done()
        if not p["routing_ok"]:
            self._route()
        previous = p["active_before"] if p["active_before"] != p["active"] else (p["state"] or {}).get("previous")
        state = build_state(params["name"], p["active"], previous, params["upstreams"][p["active"]])
        state.update(routing=p["wanted"], weights=routing.weights_of(p["wanted"]), canary=p["canary"])
        atomic_write(params["state_file"], dump_state(state))
        return self._done()

    def _route(self):
        p = self.plan
        routing_dir, wanted, old = p["routing_dir"], p["wanted"], p["pattern_before"]
        routing.ensure_set(routing_dir, wanted)
        routing.point_split(routing_dir, wanted)
        resolved = routing.slot_colors(routing_dir)
        if resolved != self._colors(wanted):
            self._unroute(old)
            raise BlueGreenError(
                f"the routing links under {routing_dir} resolve to {resolved}, expected {self._colors(wanted)}: "
                f"{routing.SPLIT} was put back ({routing.describe(old)}). Check the directory for foreign files.",
            )
        if self.params.get("verify_url"):
            self._verify_routed()

    def _unroute(self, old):
        if old is None:
            routing.remove_split(self.plan["routing_dir"])
        else:
            routing.point_split(self.plan["routing_dir"], old)

    def _verify_routed(self):
        params, p = self.params, self.plan
        color, expected = p["color"], params["expected_status"]
        # Only a switch to 100 % can demand the colour on the first answer; a canary step checks the status.
        header = params.get("verify_header") if p["weight"] == 100 else None
        accept = color_answer(expected, header, color) if header else status_is(expected)
        verify = wait_until_ok(
            self._verify_fetch(),
            params["verify_url"],
            accept,
            threshold=1,
            timeout=params["verify_timeout"],
            interval=min(params["health_interval"], 0.5),
            clock=self.clock,
            sleep=self.sleep,
        )
        self.result["verify_checks"] = verify.attempts
        if verify.ok:
            return
        self._unroute(p["pattern_before"])
        wanted = f"status {expected}" + (f" with {header}: {color}" if header else "")
        raise BlueGreenError(
            f"nginx does not serve {color} after routing {p['weight']} % to it: {params['verify_url']} did not "
            f"answer {wanted} within {params['verify_timeout']}s ({verify.attempts} attempts); last answer: "
            f"{verify.last.describe()}. {routing.SPLIT} was put back ({routing.describe(p['pattern_before'])}). "
            f"Check that the nginx site routes through {p['routing_dir']} (root .../{routing.SPLIT}/slot$<app>_slot, "
            "proxy_pass http://$<app>_backend).",
            verify=verify.as_dict(),
        )
