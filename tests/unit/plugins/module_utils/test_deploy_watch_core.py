# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os

import pytest

from ansible_collections.stackops.platform.plugins.module_utils.deploy_watch_core import (
    LogTail,
    Tally,
    WatchError,
    belongs_to,
    parse_line,
    percentile,
    validate,
    verdict,
    watch,
)

BLUE = "127.0.0.1:8001"
GREEN = "127.0.0.1:8002"


def line(status=200, upstream=GREEN, urt="0.012", rt="0.013", color=None, request="GET / HTTP/1.1", agent="curl/8.0"):
    """One line in the api role's log format (roles/api/templates/nginx-site.conf.j2)."""
    text = (
        f'127.0.0.1 - - [02/Dec/2026:03:00:00 +0000] "{request}" {status} 51 "-" "{agent}" '
        f"req_id=0a1b2c upstream={upstream} rt={rt} urt={urt}"
    )
    return text + (f" color={color}" if color is not None else "")


@pytest.mark.parametrize(
    ("text", "status", "upstreams", "latency"),
    [
        (line(), 200, [GREEN], 12.0),
        (line(status=503, urt="0.250"), 503, [GREEN], 250.0),
        # nginx retried: the last address answered, its time is the last one.
        (line(upstream=f"{BLUE}, {GREEN}", urt="0.001, 0.020"), 200, [BLUE, GREEN], 20.0),
        # Internal redirect between upstream groups.
        (line(upstream=f"{BLUE} : {GREEN}", urt="0.003 : 0.004"), 200, [BLUE, GREEN], 4.0),
        # No upstream answer (connection refused): a 502 with no latency.
        (line(status=502, urt="-"), 502, [GREEN], None),
        # No upstream at all (served by nginx itself).
        (line(status=404, upstream="-", urt="-"), 404, [], None),
        (line(upstream="unix:/run/api/green.sock"), 200, ["unix:/run/api/green.sock"], 12.0),
        # Quotes, spaces and key=value-looking text inside the request and the user agent do not confuse it.
        (line(request="GET /?upstream=evil rt=1 HTTP/1.1", agent="Mozilla/5.0 (X) upstream=x"), 200, [GREEN], 12.0),
    ],
)
def test_parse_line(text, status, upstreams, latency):
    entry = parse_line(text)
    assert entry.status == status
    assert entry.upstreams == upstreams
    assert entry.latency_ms == (pytest.approx(latency) if latency is not None else None)


@pytest.mark.parametrize(
    "text",
    ["", "garbage", '127.0.0.1 - - [x] "GET / HTTP/1.1" 200 5 "-" "curl"', "upstream=1.2.3.4:80 rt=0.1"],
)
def test_lines_of_another_format_are_not_parsed(text):
    assert parse_line(text) is None


def test_colour_field_wins_over_the_address():
    # i12s's socket switch may show one address for both colours; then color= names the colour.
    shared = "unix:/run/api/live.sock"
    assert belongs_to(parse_line(line(upstream=shared, color="green")), "green", {shared})
    assert not belongs_to(parse_line(line(upstream=shared, color="blue")), "green", {shared})
    assert belongs_to(parse_line(line(upstream=GREEN, color="-")), "green", {GREEN})
    assert not belongs_to(parse_line(line(upstream=f"{GREEN}, {BLUE}")), "green", {GREEN})


@pytest.mark.parametrize(
    ("values", "share", "expected"),
    [
        ([], 0.95, None),
        ([5.0], 0.95, 5.0),
        (list(range(1, 101)), 0.95, 95),
        (list(range(1, 21)), 0.95, 19),
        ([3, 1, 2], 0.5, 2),
    ],
)
def test_percentile_nearest_rank(values, share, expected):
    assert percentile(values, share) == expected


def tally_of(lines, color="green", addresses=(GREEN,)):
    tally = Tally(color, addresses)
    for text in lines:
        tally.add(text)
    return tally


def test_tally_counts_only_the_watched_colour():
    lines = [line()] * 8 + [line(status=500)] * 2 + [line(upstream=BLUE, status=500)] * 5 + ["junk"]
    tally = tally_of(lines)
    assert (tally.requests, tally.errors_5xx, tally.other, tally.unparsed, tally.lines) == (10, 2, 5, 1, 16)
    assert tally.error_ratio == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("lines", "breached", "enough", "words"),
    [
        ([line()] * 5, False, False, "not enough traffic to judge: 5 requests to green (fewer than 20); passed"),
        ([line()] * 99 + [line(status=500)], False, True, "within guardrails: 5xx 1.00%"),
        ([line()] * 98 + [line(status=500)] * 2, True, True, "5xx ratio 2.00% (2 of 100) above 1.00%"),
        ([line()] * 90 + [line(urt="0.400")] * 10, True, True, "p95 upstream time 400 ms above 300 ms"),
        ([line()] * 95 + [line(urt="0.400")] * 5, False, True, "p95 12 ms"),
        ([line(status=502, urt="-")] * 30, True, True, "5xx ratio 100.00%"),
    ],
)
def test_verdict(lines, breached, enough, words):
    got_breached, got_enough, reason = verdict(tally_of(lines), 0.01, 300, 20)
    assert (got_breached, got_enough) == (breached, enough)
    assert words in reason


def test_both_breaches_are_named():
    lines = [line()] * 80 + [line(status=500, urt="0.9")] * 20
    breached, _enough, reason = verdict(tally_of(lines), 0.01, 300, 20)
    assert breached and "5xx ratio 20.00%" in reason and "p95 upstream time 900 ms" in reason


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((0, 1, 0.01, 300, 20, [GREEN], "green"), "seconds=0"),
        ((10, 0, 0.01, 300, 20, [GREEN], "green"), "interval=0"),
        ((10, 1, 1.5, 300, 20, [GREEN], "green"), "max_error_ratio=1.5"),
        ((10, 1, 0.01, -1, 20, [GREEN], "green"), "max_p95_ms=-1"),
        ((10, 1, 0.01, 300, -2, [GREEN], "green"), "min_requests=-2"),
        ((10, 1, 0.01, 300, 20, [], "green"), "upstream address of green"),
    ],
)
def test_validate_names_the_bad_value(args, words):
    with pytest.raises(WatchError, match=words):
        seconds, interval, ratio, p95, minimum, addresses, color = args
        validate(
            color=color,
            addresses=addresses,
            seconds=seconds,
            interval=interval,
            max_error_ratio=ratio,
            max_p95_ms=p95,
            min_requests=minimum,
        )


def write(path, lines, mode="a"):
    with open(path, mode, encoding="utf-8") as fh:
        fh.writelines(text + "\n" for text in lines)


def test_tail_reads_from_the_offset_and_keeps_a_partial_line(tmp_path):
    log = tmp_path / "api.access.log"
    write(log, [line(status=500)] * 3)  # before the switch: not counted
    offset = log.stat().st_size
    write(log, [line()] * 2)
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(line(status=503)[:40])  # nginx is mid-write
    tail = LogTail(str(log), offset, log.stat().st_ino)
    assert [parse_line(t).status for t in tail.read_lines()] == [200, 200]
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(line(status=503)[40:] + "\n")
    assert [parse_line(t).status for t in tail.read_lines()] == [503]
    assert tail.read_lines() == [] and not tail.rotated
    tail.close()


def test_tail_without_offset_starts_at_the_end(tmp_path):
    log = tmp_path / "api.access.log"
    write(log, [line(status=500)] * 3)
    tail = LogTail(str(log))
    write(log, [line()])
    assert len(tail.read_lines()) == 1
    tail.close()


def test_tail_follows_a_rotation_before_the_watch(tmp_path):
    log = tmp_path / "api.access.log"
    write(log, [line()] * 2)
    offset, inode = log.stat().st_size, log.stat().st_ino
    write(log, [line(status=500)])  # after the mark, then logrotate renames the file
    os.rename(log, tmp_path / "api.access.log.1")
    write(log, [line(status=501)], mode="w")
    tail = LogTail(str(log), offset, inode)
    statuses = [parse_line(t).status for t in tail.read_lines()]
    assert statuses == [500, 501]
    assert tail.rotated and "rotated to" in tail.notes[0]
    tail.close()


def test_tail_rotation_before_the_watch_without_the_old_file(tmp_path):
    log = tmp_path / "api.access.log"
    write(log, [line()] * 2)
    offset, inode = log.stat().st_size, log.stat().st_ino
    os.rename(log, tmp_path / "elsewhere.log")
    write(log, [line(status=501)], mode="w")
    tail = LogTail(str(log), offset, inode)
    assert [parse_line(t).status for t in tail.read_lines()] == [501]
    assert "not found" in tail.notes[0]
    tail.close()


def test_tail_follows_a_rotation_during_the_watch(tmp_path):
    log = tmp_path / "api.access.log"
    write(log, [line()])
    tail = LogTail(str(log), 0, log.stat().st_ino)
    assert len(tail.read_lines()) == 1
    write(log, [line(status=500)])
    os.rename(log, tmp_path / "api.access.log.1")
    write(log, [line(status=501)], mode="w")
    # nginx keeps writing to the renamed file until it reopens its logs.
    write(tmp_path / "api.access.log.1", [line(status=502)])
    assert sorted(parse_line(t).status for t in tail.read_lines()) == [500, 501, 502]
    write(tmp_path / "api.access.log.1", [line(status=503)])
    write(log, [line(status=504)])
    assert sorted(parse_line(t).status for t in tail.read_lines()) == [503, 504]
    assert tail.rotated
    tail.close()


@pytest.mark.parametrize("during", [False, True])
def test_tail_after_a_truncation_reads_from_the_start(tmp_path, during):
    log = tmp_path / "api.access.log"
    write(log, [line()] * 5)
    offset = log.stat().st_size
    tail = LogTail(str(log), offset, log.stat().st_ino) if during else None
    write(log, [line(status=500)], mode="w")  # copytruncate, then one new line
    if tail is None:
        tail = LogTail(str(log), offset, log.stat().st_ino)
    assert [parse_line(t).status for t in tail.read_lines()] == [500]
    assert tail.rotated and "truncated" in tail.notes[0]
    tail.close()


def test_tail_of_a_missing_log_names_it(tmp_path):
    with pytest.raises(WatchError, match=r"cannot read the access log .*nope\.log"):
        LogTail(str(tmp_path / "nope.log"), 0, None)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def run_watch(tmp_path, batches, **overrides):
    """Watch a log to which one batch of lines is appended per poll."""
    log = tmp_path / "api.access.log"
    write(log, [], mode="w")
    clock = FakeClock()
    pending = list(batches)

    def sleep(seconds):
        clock.sleep(seconds)
        if pending:
            write(log, pending.pop(0))

    options = dict(seconds=10, interval=1, max_error_ratio=0.01, max_p95_ms=300, min_requests=20)
    options.update(overrides)
    tail = LogTail(str(log), 0, log.stat().st_ino)
    try:
        return watch(tail, Tally("green", [GREEN]), clock=clock, sleep=sleep, **options)
    finally:
        tail.close()


def test_watch_stops_at_the_first_breach_with_enough_traffic(tmp_path):
    batches = [[line()] * 9 + [line(status=500)]] * 20
    result = run_watch(tmp_path, batches)
    assert result["breached"] and result["stopped_early"]
    # 10 requests after the first poll is not enough to judge; 20 after the second is.
    assert result["requests"] == 20 and result["errors_5xx"] == 2 and result["error_ratio"] == 0.1
    assert result["elapsed"] == 2.0


def test_watch_runs_the_whole_window_when_healthy(tmp_path):
    result = run_watch(tmp_path, [[line()] * 10] * 20)
    assert not result["breached"] and not result["stopped_early"] and result["enough_traffic"]
    assert result["elapsed"] == 10.0 and result["requests"] == 100 and result["p95_ms"] == 12.0


def test_watch_without_stop_on_breach_measures_the_whole_window(tmp_path):
    batches = [[line()] * 9 + [line(status=500)]] * 20
    result = run_watch(tmp_path, batches, stop_on_breach=False)
    assert result["breached"] and not result["stopped_early"] and result["requests"] == 100


def test_watch_without_traffic_passes_and_says_so(tmp_path):
    result = run_watch(tmp_path, [[line(upstream=BLUE)] * 3] * 20)
    assert not result["breached"] and not result["enough_traffic"]
    assert result["requests"] == 0 and result["lines_other"] == 30
    assert result["reason"].startswith("not enough traffic")
