"""GFS retention over a synthetic year: the kept set is computed independently by grouping calendar periods."""

from __future__ import annotations

import datetime
import json
import os

import pytest

from ansible_collections.stackops.platform.plugins.module_utils import backup_retention as gfs
from ansible_collections.stackops.platform.plugins.module_utils import pg_backup_core as core

UTC = datetime.UTC
YEAR_START = datetime.datetime(2025, 1, 1, 2, 30, tzinfo=UTC)


def daily_year(hours=(2,), skip=()):
    """Backups every day of 2025 at the given hours, minus the dates in ``skip``."""
    items = []
    for offset in range(365):
        day = (YEAR_START + datetime.timedelta(days=offset)).date()
        if day in skip:
            continue
        for hour in hours:
            when = datetime.datetime(day.year, day.month, day.day, hour, 30, tzinfo=UTC)
            items.append({"name": f"app_{core.format_timestamp(when)}.dump", "time": when})
    return items


def expected_kept(items, policy, now=None):
    """Independent expectation: group good backups by strftime period keys, keep the newest of the
    N newest periods, the N newest overall, those within keep_days, and the newest good one."""
    good = sorted((i for i in items if i.get("good", True)), key=lambda i: i["time"], reverse=True)
    kept = {good[0]["name"]} if good else set()
    if policy.get("keep_last"):
        kept |= {i["name"] for i in good[: policy["keep_last"]]}
    if policy.get("keep_days"):
        kept |= {i["name"] for i in good if now - i["time"] < datetime.timedelta(days=policy["keep_days"])}
    for rule, fmt in (("keep_daily", "%Y-%m-%d"), ("keep_weekly", "%G-W%V"), ("keep_monthly", "%Y-%m")):
        if not policy.get(rule):
            continue
        periods = {}
        for item in good:
            key = item["time"].strftime(fmt)
            if key not in periods or item["time"] > periods[key]["time"]:
                periods[key] = item
        for key in sorted(periods, reverse=True)[: policy[rule]]:
            kept.add(periods[key]["name"])
    newest_good = good[0]["time"] if good else None
    kept |= {i["name"] for i in items if not i.get("good", True) and (newest_good is None or i["time"] > newest_good)}
    return kept


def test_synthetic_year_daily_weekly_monthly_keeps_exactly_the_calendar_set():
    items = daily_year()
    plan = gfs.select(items, {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12})
    kept = set(plan["keep"])
    assert kept == expected_kept(items, {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12})
    # Worked by hand: 2025-12-25..31 (daily); ISO weeks 2026-W01 (Dec 31), 2025-W52 (Dec 28), W51 (Dec 21),
    # W50 (Dec 14); the last day of each month Jan..Dec. 7 + 2 + 11 = 20 backups.
    days = {datetime.date(2025, 12, d) for d in (25, 26, 27, 28, 29, 30, 31, 21, 14)}
    days |= {datetime.date(2025, m + 1, 1) - datetime.timedelta(days=1) for m in range(1, 12)}
    assert kept == {i["name"] for i in items if i["time"].date() in days}
    assert len(kept) == 20
    assert plan["keep"][items[-1]["name"]] == ["newest_good", "keep_daily", "keep_weekly", "keep_monthly"]
    assert plan["keep"][f"app_{core.format_timestamp(datetime.datetime(2025, 12, 21, 2, 30, tzinfo=UTC))}.dump"] == [
        "keep_weekly"
    ]
    assert plan["keep"]["app_20250131T023000Z.dump"] == ["keep_monthly"]
    assert len(plan["delete"]) == 365 - 20
    assert not kept & {i["name"] for i in plan["delete"]}


GAPS = {datetime.date(2025, 2, 1) + datetime.timedelta(days=n) for n in range(28)}  # all of February
GAPS |= {datetime.date(2025, 10, 6) + datetime.timedelta(days=n) for n in range(7)}  # ISO week 41
GAPS |= {datetime.date(2025, 12, 30), datetime.date(2025, 12, 27)}


@pytest.mark.parametrize(
    "policy",
    [
        {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12},
        {"keep_daily": 3, "keep_weekly": 10, "keep_monthly": 6, "keep_last": 5},
        {"keep_monthly": 24},
        {"keep_weekly": 60},
        {"keep_last": 1},
        {"keep_daily": 0, "keep_weekly": 2},
        {"keep_days": 10, "keep_monthly": 3},
    ],
)
def test_several_per_day_with_gaps_and_a_failed_newest(policy):
    items = daily_year(hours=(1, 9, 17), skip=GAPS)
    items[-1]["good"] = False  # the newest run failed
    now = items[-1]["time"] + datetime.timedelta(hours=1)
    plan = gfs.select(items, policy, now=now)
    assert set(plan["keep"]) == expected_kept(items, policy, now=now)
    newest_good = items[-2]
    assert "newest_good" in plan["keep"][newest_good["name"]]
    assert plan["keep"][items[-1]["name"]] == ["newer_than_newest_good"]
    assert {i["name"] for i in plan["delete"]} | set(plan["keep"]) == {i["name"] for i in items}
    # Only the last backup of a day can be a daily/weekly/monthly pick.
    for name, why in plan["keep"].items():
        if set(why) <= {"keep_daily", "keep_weekly", "keep_monthly"}:
            assert "T17" in name


def test_gap_does_not_use_up_a_count():
    items = daily_year(skip=GAPS)
    plan = gfs.select(items, {"keep_monthly": 12})
    # February has no backup: twelve months with backups reach back to 2025-01 anyway (only 11 have one).
    months = {name[4:10] for name in plan["keep"]}
    assert months == {f"2025{m:02d}" for m in range(1, 13) if m != 2}


def test_failed_backups_older_than_the_newest_good_are_deleted():
    items = daily_year()[-5:]
    items[1]["good"] = False
    plan = gfs.select(items, {"keep_last": 10})
    assert [i["name"] for i in plan["delete"]] == [items[1]["name"]]


@pytest.mark.parametrize("keep_last", [1, 2, 30])
def test_newest_good_is_kept_whatever_the_order_and_protect_is_honoured(keep_last):
    items = list(reversed(daily_year()[:40]))
    plan = gfs.select(items, {"keep_monthly": 1, "keep_last": keep_last}, protect={items[-1]["name"]})
    assert "newest_good" in plan["keep"][items[0]["name"]]
    assert plan["keep"][items[-1]["name"]] == ["protected"]


def test_no_policy_keeps_everything_with_a_reason():
    items = daily_year()[:3]
    plan = gfs.select(items, {})
    assert plan["delete"] == [] and all("no_policy" in why for why in plan["keep"].values())
    assert gfs.describe(plan)[0].endswith("kept by newest_good, no_policy")


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"keep_daily": -1}, "keep_daily must be 0 or more, got -1"),
        ({"keep_weekly": -3, "keep_daily": 7}, "keep_weekly must be 0 or more, got -3"),
        ({"keep_last": 0}, "retention keep_last=0 keeps nothing"),
        ({"keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0}, "keep_daily=0, keep_weekly=0, keep_monthly=0 keeps"),
        ({"keep_monthly": "12"}, "keep_monthly must be a whole number, got '12'"),
        ({"keep_last": True}, "keep_last must be a whole number, got True"),
    ],
)
def test_bad_policy_is_refused_naming_the_value(policy, message):
    with pytest.raises(gfs.RetentionError, match=message.replace("(", r"\(")):
        gfs.select(daily_year()[:3], policy)


# ----------------------------------------------------------------------------- through the backup core

FAKE_DUMP = (
    "#!/bin/sh\n"
    'case "$1" in --version) echo "pg_dump (PostgreSQL) 15.1"; exit 0;; esac\n'
    'for a in "$@"; do case "$a" in --file=*) f="${a#--file=}";; esac; done\n'
    'printf "PGDMP STANDIN dump" > "$f"\n'
)
FAKE_RESTORE = "#!/bin/sh\necho ';     Dumped from database version: 15.1'\necho '1; 1 1 TABLE public t o'\n"


def fake_tools(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool, body in (("pg_dump", FAKE_DUMP), ("pg_restore", FAKE_RESTORE)):
        (bin_dir / tool).write_text(body)
        (bin_dir / tool).chmod(0o755)
    return str(bin_dir)


def seed_year(db_dir, end):
    """A complete backup (dump + manifest) every day of the year before ``end``, three on some days."""
    names = []
    for offset in range(1, 366):
        for hour in (0, 12) if offset % 10 == 0 else (0,):
            when = (end - datetime.timedelta(days=offset)).replace(hour=hour, minute=5, second=0, microsecond=0)
            name = f"app_{core.format_timestamp(when)}.dump"
            (db_dir / name).write_bytes(b"PGDMP STANDIN")
            (db_dir / (name + ".manifest.json")).write_text(json.dumps({"name": name, "sha256": "x"}))
            names.append(name)
    return names


@pytest.mark.parametrize(
    "policy",
    [
        {"keep_daily": 7, "keep_weekly": 5, "keep_monthly": 12},
        {"keep_last": 3, "keep_monthly": 2},
        {"keep_last": 7, "keep_days": 7},  # the 0.1.0 options still work
    ],
)
def test_check_mode_equals_the_real_run_over_a_year(tmp_path, policy):
    backups = tmp_path / "backups"
    db_dir = backups / "app"
    db_dir.mkdir(parents=True)
    seed_year(db_dir, core.utc_now())
    params = {"database": "app", "backup_dir": str(backups), "bin_dir": fake_tools(tmp_path),
              "row_counts": False, "globals": False, **policy}
    plan = core.plan_backup(params)
    result = core.run_backup(params)
    assert sorted(result["pruned"]) == sorted(plan["pruned"])
    assert {k: v for k, v in result["kept"].items() if k != result["name"]} == {
        k: v for k, v in plan["kept"].items() if k != os.path.basename(plan["path"])
    }
    left = {b["name"] for b in core.list_backups(str(db_dir), "app")}
    assert left == set(result["kept"]) and result["name"] in left
    assert not left & {os.path.basename(p) for p in result["pruned"]}
    assert "newest_good" in result["kept"][result["name"]]


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"keep_daily": -2}, "keep_daily must be 0 or more, got -2"),
        ({"keep_daily": 0, "keep_monthly": 0}, "keep_daily=0, keep_monthly=0 keeps nothing"),
    ],
)
def test_bad_counts_fail_before_anything_is_deleted(tmp_path, policy, message):
    backups = tmp_path / "backups"
    db_dir = backups / "app"
    db_dir.mkdir(parents=True)
    names = seed_year(db_dir, core.utc_now())
    params = {"database": "app", "backup_dir": str(backups), "bin_dir": fake_tools(tmp_path), **policy}
    for step in (core.plan_backup, core.run_backup):
        with pytest.raises(core.PgBackupError, match=message):
            step(params)
    assert {b["name"] for b in core.list_backups(str(db_dir), "app")} == set(names)
