# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""locust side of playbooks/loadtest.yml, run by stackops_loadtest.py (not on its own).

Holds each stage's request rate: one user per requested RPS, each paced at one request a second
(constant_throughput), so a slow answer lowers the achieved rate instead of hiding behind more requests.
Every request is recorded as (offset from the start in s, duration in ms, HTTP status; 0 = no answer) and
written to $STACKOPS_LOADTEST_SAMPLES when locust quits; stackops_loadtest.py does the arithmetic.
"""

from __future__ import annotations

import json
import os
import time

from locust import FastHttpUser, LoadTestShape, constant_throughput, events, task

with open(os.environ["STACKOPS_LOADTEST_PLAN"], encoding="utf-8") as _plan:
    PLAN = json.load(_plan)
SAMPLES = []
# perf_counter() at the start of the run, as the shape counts it (set by its first tick).
RUN = {"start": None}


def _offset():
    return time.perf_counter() - RUN["start"] if RUN["start"] is not None else 0.0


def _stage(offset):
    for stage in PLAN:
        if stage["start"] <= offset < stage["end"]:
            return stage
    return PLAN[-1]


@events.request.add_listener
def _record(response_time, response=None, exception=None, **_kwargs):
    status = getattr(response, "status_code", 0) or 0
    if exception is not None and status == 0:
        status = 0
    SAMPLES.append((round(_offset() - (response_time or 0) / 1000, 4), round(response_time or 0, 3), int(status)))


@events.quitting.add_listener
def _write_samples(**_kwargs):
    with open(os.environ["STACKOPS_LOADTEST_SAMPLES"], "w", encoding="utf-8") as out:
        json.dump(SAMPLES, out)


class StagedUser(FastHttpUser):
    """One request a second to the path of the stage running now."""

    wait_time = constant_throughput(1)

    @task
    def request(self):
        stage = _stage(_offset())
        self.client.get(stage["path"], name=stage["name"])


class Stages(LoadTestShape):
    """The plan's stages in order: `rps` users, all started (or the previous stage's extra users stopped)
    within a second, so a stage's rate is not the previous one's tail; stop after the last stage."""

    def tick(self):
        RUN["start"] = self.start_time
        run_time = self.get_run_time()
        for i, stage in enumerate(PLAN):
            if stage["start"] <= run_time < stage["end"]:
                previous = PLAN[i - 1]["rps"] if i else 0
                return stage["rps"], max(stage["rps"], previous, 1)
        return None
