# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Grandfather-father-son retention for backups: which to keep, which to delete, and why.

Pure and standard library only: the pg_backup core (local backups, also run by the backup timer)
and the off-site copy (remote backups) share this one implementation.

A policy holds up to five counts; a backup is kept when any rule keeps it:

- ``keep_last`` N: the N newest good backups;
- ``keep_days`` D: good backups younger than D days (the 0.1.0 option, kept as is);
- ``keep_daily`` D: the newest good backup of each of the D newest days that have one;
- ``keep_weekly`` W: the same per ISO week (``isocalendar()`` year and week);
- ``keep_monthly`` M: the same per calendar month.

Periods are counted like restic's and borg's ``--keep-daily``: a day (week, month) without a
backup does not use up a count, so a gap never costs older archives. Periods are taken in the
backups' own timezone (UTC for pg_backup names).

Whatever the counts, the newest good backup is never deleted, nor any name in ``protect``.
Failed backups (``good`` false) never satisfy a rule; those newer than the newest good backup are
kept (a run may still be finishing them), older ones are deleted.
"""

from __future__ import annotations

import datetime

COUNT_RULES = ("keep_last", "keep_days", "keep_daily", "keep_weekly", "keep_monthly")
PERIOD_RULES = {
    "keep_daily": lambda moment: moment.date(),
    "keep_weekly": lambda moment: tuple(moment.isocalendar())[:2],
    "keep_monthly": lambda moment: (moment.year, moment.month),
}
# Reasons that are not counts.
NEWEST = "newest_good"
PROTECTED = "protected"
NO_POLICY = "no_policy"
UNFINISHED = "newer_than_newest_good"


class RetentionError(ValueError):
    """A retention policy that cannot be applied; the message names the bad value."""


def check_policy(policy):
    """Return ``{rule: int or None}`` for the five rules; raise RetentionError naming a bad value.

    Unset (None) rules do not apply. A negative count, a non-integer, or a policy whose set counts
    are all zero (it would keep nothing but the newest) is refused before anything is deleted.
    """
    result = {}
    for rule in COUNT_RULES:
        value = policy.get(rule)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int):
                raise RetentionError(f"{rule} must be a whole number, got {value!r}")
            if value < 0:
                raise RetentionError(f"{rule} must be 0 or more, got {value}")
        result[rule] = value
    given = {rule: value for rule, value in result.items() if value is not None}
    if given and not any(given.values()):
        named = ", ".join(f"{rule}=0" for rule in given)
        raise RetentionError(
            f"retention {named} keeps nothing: set at least one of {', '.join(COUNT_RULES)} to 1 or more "
            "(or leave them all unset to keep every backup)"
        )
    return result


def is_active(policy):
    return any(value is not None for value in policy.values())


def select(backups, policy, now=None, protect=(), moment=None):
    """Apply ``policy`` to ``backups``; change nothing.

    ``backups``: dicts with a ``name`` and a timezone-aware ``time`` (or pass ``moment``, a function
    returning it), optionally ``good`` (default True). Returns::

        {"keep": {name: [reasons]}, "delete": [backup, ...] newest first, "policy": {...}}

    Every backup appears exactly once: as a key of ``keep`` or in ``delete``.
    """
    policy = check_policy(policy)
    moment = moment or (lambda item: item["time"])
    timed = [(moment(item), item) for item in backups]
    timed.sort(key=lambda pair: (pair[0], pair[1]["name"]), reverse=True)
    good = [(when, item) for when, item in timed if item.get("good", True)]
    reasons = {item["name"]: [] for _when, item in timed}
    active = is_active(policy)

    newest_good = good[0][0] if good else None
    if good:
        reasons[good[0][1]["name"]].append(NEWEST)
    for _when, item in timed:
        if item["name"] in protect:
            reasons[item["name"]].append(PROTECTED)
        if not item.get("good", True) and (newest_good is None or _when > newest_good):
            reasons[item["name"]].append(UNFINISHED)
        if not active:
            reasons[item["name"]].append(NO_POLICY)

    if policy["keep_last"]:
        for _when, item in good[: policy["keep_last"]]:
            reasons[item["name"]].append("keep_last")
    if policy["keep_days"]:
        limit = datetime.timedelta(days=policy["keep_days"])
        now = now or datetime.datetime.now(datetime.UTC)
        for when, item in good:
            if now - when < limit:
                reasons[item["name"]].append("keep_days")
    for rule, period_of in PERIOD_RULES.items():
        count = policy[rule]
        if not count:
            continue
        seen = set()
        for when, item in good:
            period = period_of(when)
            if period in seen:
                continue
            seen.add(period)
            if len(seen) > count:
                break
            reasons[item["name"]].append(rule)

    keep = {}
    delete = []
    for _when, item in timed:
        why = reasons[item["name"]]
        if why:
            keep[item["name"]] = why
        else:
            delete.append(item)
    return {"keep": keep, "delete": delete, "policy": policy}


def describe(plan):
    """One line per backup for humans and check mode: ``name: kept by keep_daily, keep_weekly``."""
    lines = [f"{name}: kept by {', '.join(why)}" for name, why in plan["keep"].items()]
    lines.extend(f"{item['name']}: delete" for item in plan["delete"])
    return lines
