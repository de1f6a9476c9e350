# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible_collections.stackops.platform.plugins.module_utils.http_probe import Response
from ansible_collections.stackops.platform.plugins.module_utils.unit_health import (
    UnitDown,
    UnitWait,
    describe_exit,
    parse_show,
    unit_problem,
)

RUNNING = (
    "LoadState=loaded\nActiveState=active\nSubState=running\nResult=success\nNRestarts=0\n"
    "ExecMainStatus=0\nExecMainCode=0\n"
)
AUTO_RESTART = (
    "LoadState=loaded\nActiveState=activating\nSubState=auto-restart\nResult=exit-code\nNRestarts=1\n"
    "ExecMainStatus=1\nExecMainCode=1\n"
)
FAILED = (
    "LoadState=loaded\nActiveState=failed\nSubState=failed\nResult=exit-code\nNRestarts=5\n"
    "ExecMainStatus=3\nExecMainCode=1\n"
)
EXITED_0 = (
    "LoadState=loaded\nActiveState=inactive\nSubState=dead\nResult=success\nNRestarts=0\n"
    "ExecMainStatus=0\nExecMainCode=1\n"
)
KILLED = (
    "LoadState=loaded\nActiveState=failed\nSubState=failed\nResult=signal\nNRestarts=0\n"
    "ExecMainStatus=9\nExecMainCode=2\n"
)
RESTARTED_RUNNING = RUNNING.replace("NRestarts=0", "NRestarts=1")
NOT_FOUND = "LoadState=not-found\nActiveState=inactive\nSubState=dead\n"
STARTING = RUNNING.replace("ActiveState=active", "ActiveState=activating").replace("SubState=running", "SubState=start")


@pytest.mark.parametrize(
    ("show", "words"),
    [
        (RUNNING, None),
        (STARTING, None),
        (AUTO_RESTART, "restart-looping: its process exited with status 1"),
        (FAILED, "the unit failed: its process exited with status 3"),
        (EXITED_0, "the unit stopped: its process exited with status 0"),
        (KILLED, "the unit failed: its process killed by signal 9"),
        (RESTARTED_RUNNING, "restart-looping"),
        (NOT_FOUND, "the unit is not-found"),
    ],
)
def test_unit_problem(show, words):
    problem = unit_problem(parse_show(show), restarts_before=0)
    if words is None:
        assert problem is None
    else:
        assert words in problem


def test_restarts_before_the_wait_do_not_count():
    assert unit_problem(parse_show(RESTARTED_RUNNING), restarts_before=1) is None


def test_describe_exit_without_details():
    assert describe_exit({}) == "its process ended"


class Host:
    """systemctl show answers from a script of states; journalctl returns fixed lines; a scripted health URL."""

    def __init__(self, states, answers=(), journal_rc=0):
        self.states = list(states)
        self.answers = list(answers)
        self.calls = []
        self.now = 0.0
        self.journal_rc = journal_rc

    def run(self, argv):
        self.calls.append(argv[0])
        if argv[0] == "systemctl":
            state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
            return (0, state, "") if state is not None else (1, "", "Failed to connect to bus")
        if self.journal_rc:
            return self.journal_rc, "", "No journal files were found."
        return 0, "2026-12-02T03:00:01 host api-green[7]: RuntimeError: boom\n", ""

    def fetch(self, url, timeout):
        answer = self.answers.pop(0) if len(self.answers) > 1 else (self.answers[0] if self.answers else None)
        return answer or Response(None, error="Connection refused")

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds

    def wait(self, **kw):
        options = dict(timeout=30, interval=0.5)
        options.update(kw)
        return UnitWait(self.run, fetch=self.fetch, clock=self.clock, sleep=self.sleep).wait(
            "api@green.service", "http://127.0.0.1:8002/health", **options
        )


def test_healthy_unit():
    host = Host([RUNNING], [Response(None, error="refused"), Response(200, "ok")])
    result = host.wait()
    assert result["ok"] and result["reason"] == "healthy" and result["attempts"] == 2
    assert result["journal"] == [] and "journalctl" not in host.calls


def test_a_unit_that_dies_at_start_fails_at_once_with_its_journal():
    host = Host([RUNNING, AUTO_RESTART])
    result = host.wait()
    assert not result["ok"]
    assert "restart-looping" in result["reason"]
    assert result["journal"] == ["2026-12-02T03:00:01 host api-green[7]: RuntimeError: boom"]
    # One round (0.5 s), not the 30 s timeout.
    assert result["elapsed"] == 0.5 and result["attempts"] == 1


def test_a_failed_unit_is_seen_before_any_request():
    host = Host([FAILED])
    result = host.wait()
    assert not result["ok"] and result["attempts"] == 0 and "failed" in result["reason"]


def test_timeout_names_the_last_answer_and_the_state():
    host = Host([RUNNING], [Response(503, "db down")])
    result = host.wait(timeout=3)
    assert not result["ok"]
    reason = result["reason"]
    assert "within 3 s" in reason and "status 503" in reason and "active/running" in reason
    assert result["journal"]


def test_threshold_needs_answers_in_a_row():
    host = Host([RUNNING], [Response(200), Response(503), Response(200), Response(200)])
    result = host.wait(healthy_threshold=2)
    assert result["ok"] and result["attempts"] == 4


def test_journal_failure_is_reported_not_raised():
    host = Host([FAILED], journal_rc=1)
    assert "journalctl failed, rc 1" in host.wait()["journal"][0]


def test_systemctl_failure_raises_unit_down():
    with pytest.raises(UnitDown, match=r"systemctl show api@green\.service failed"):
        Host([None]).wait()


class Systemctl:
    """Records systemctl calls; is-enabled answers ``enabled_answer``, a verb in ``failing`` fails."""

    def __init__(self, enabled_answer=(0, "enabled\n"), failing=()):
        self.enabled_answer = enabled_answer
        self.failing = failing
        self.calls = []

    def run(self, argv):
        self.calls.append(argv[1:])
        verb = argv[1]
        if verb == "is-enabled":
            rc, out = self.enabled_answer
            return rc, out, ""
        if verb in self.failing:
            return 1, "", f"Failed to {verb} unit: Access denied"
        return 0, "", ""


@pytest.mark.parametrize(
    ("answer", "enables"),
    [((0, "enabled\n"), False), ((0, "static\n"), False), ((1, "disabled\n"), True), ((4, "not-found\n"), True)],
)
def test_restart_enables_only_a_unit_that_is_not_enabled(answer, enables):
    systemctl = Systemctl(enabled_answer=answer)
    done = UnitWait(systemctl.run).restart("api@green.service", enable=True)
    assert done == (["enabled", "restarted"] if enables else ["restarted"])
    expected = [["is-enabled", "api@green.service"]]
    expected += [["enable", "api@green.service"]] if enables else []
    assert systemctl.calls == [*expected, ["restart", "api@green.service"]]


def test_restart_without_enable_asks_nothing_else():
    systemctl = Systemctl(enabled_answer=(1, "disabled\n"))
    assert UnitWait(systemctl.run).restart("api@green.service") == ["restarted"]
    assert systemctl.calls == [["restart", "api@green.service"]]


def test_a_failed_restart_raises_unit_down_with_systemds_words():
    systemctl = Systemctl(failing=("restart",))
    with pytest.raises(UnitDown, match=r"systemctl restart api@green\.service failed \(rc 1\): .*Access denied"):
        UnitWait(systemctl.run).restart("api@green.service", enable=True)
