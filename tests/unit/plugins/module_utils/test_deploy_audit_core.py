"""Unit tests of the deploy audit core: entries, bad input, locked appends, torn lines."""

from __future__ import annotations

import json
import os
import threading

import pytest

from ansible_collections.stackops.platform.plugins.module_utils import deploy_audit_core as core
from ansible_collections.stackops.platform.plugins.module_utils.file_primitives import HolderLock

GOOD = {
    "event": "deploy",
    "result": "ok",
    "app": "shop",
    "release": "r2",
    "previous": "r1",
    "color": "green",
    "host": "app1",
    "duration": 7.4567,
    "who": {"user": "alice", "job_id": "4711"},
    "watch": {"requests": 1200, "error_ratio": 0.0, "p95_ms": 41},
}


def test_entry_holds_every_field():
    entry = core.build_entry(GOOD, now="2026-02-20T05:12:35Z")
    assert entry == {
        "time": "2026-02-20T05:12:35Z",
        "event": "deploy",
        "app": "shop",
        "host": "app1",
        "release": "r2",
        "previous": "r1",
        "color": "green",
        "result": "ok",
        "duration_s": 7.457,
        "who": {"user": "alice", "job_id": "4711"},
        "watch": {"requests": 1200, "error_ratio": 0.0, "p95_ms": 41},
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"event": "restart"}, "event 'restart' is not one of deploy, rollback, switch"),
        ({"result": "maybe"}, "result 'maybe' is not one of ok, failed"),
        ({"app": "  "}, "app must name the app"),
        ({"duration": -1}, "duration -1 must be 0 or more seconds"),
        ({"duration": "soon"}, "duration 'soon' is not a number"),
        ({"watch": [1]}, "watch must be a dict"),
        ({"extra": {"result": "ok"}}, "extra must not override the entry's own keys: result"),
    ],
)
def test_bad_input_names_the_value(change, message):
    with pytest.raises(core.AuditError, match=message):
        core.build_entry(dict(GOOD, **change))


def test_long_failure_message_is_cut_and_extra_keys_added():
    entry = core.build_entry(dict(GOOD, result="failed", message="x" * 5000, extra={"strategy": "canary"}))
    assert len(entry["message"]) == core.MESSAGE_MAX and entry["message"].endswith("...[truncated]")
    assert entry["strategy"] == "canary"


def test_append_writes_one_line_per_entry_with_mode(tmp_path):
    log = tmp_path / "audit.jsonl"
    first = core.build_entry(GOOD, now="t1")
    second = core.build_entry(dict(GOOD, result="failed", message="health check failed"), now="t2")
    line = core.append(str(log), first)
    core.append(str(log), second)
    assert line == log.read_text().splitlines(keepends=True)[0]
    assert [json.loads(raw) for raw in log.read_text().splitlines()] == [first, second]
    assert core.read_entries(str(log)) == [first, second]
    assert os.stat(log).st_mode & 0o777 == 0o640
    # An existing log keeps its mode.
    os.chmod(log, 0o600)
    core.append(str(log), first)
    assert os.stat(log).st_mode & 0o777 == 0o600


def test_append_closes_a_torn_line_first(tmp_path):
    log = tmp_path / "audit.jsonl"
    log.write_text('{"event": "deploy", "app": "sh')  # a crash in the middle of a write
    entry = core.build_entry(GOOD, now="t3")
    core.append(str(log), entry)
    lines = log.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1]) == entry
    assert core.read_entries(str(log)) == [entry]


def test_missing_directory_and_non_file_are_refused(tmp_path):
    with pytest.raises(core.AuditError, match=f"directory {tmp_path}/nope of the audit log does not exist"):
        core.append(str(tmp_path / "nope" / "audit.jsonl"), core.build_entry(GOOD))
    (tmp_path / "audit.jsonl").mkdir()
    with pytest.raises(core.AuditError, match="exists and is not a regular file"):
        core.append(str(tmp_path / "audit.jsonl"), core.build_entry(GOOD))


def test_busy_lock_names_the_holder_and_writes_nothing(tmp_path):
    log = tmp_path / "audit.jsonl"
    with HolderLock(core.lock_path(str(log))), pytest.raises(core.AuditError, match=r"locked by pid \d+"):
        core.append(str(log), core.build_entry(GOOD), lock_timeout=0)
    assert not log.exists()


def test_concurrent_appends_never_interleave(tmp_path):
    log = str(tmp_path / "audit.jsonl")

    def writer(n):
        for i in range(25):
            core.append(log, core.build_entry(dict(GOOD, release=f"w{n}-{i}", message="m" * 1500)))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries = core.read_entries(log)
    assert len(entries) == 100
    assert sorted(e["release"] for e in entries) == sorted(f"w{n}-{i}" for n in range(4) for i in range(25))
