# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""locust side of playbooks/loadtest.yml, run by stackops_loadtest.py (not on its own).

Holds each stage's request rate: one user per requested RPS, each paced at one request a second
(constant_throughput), so a slow answer lowers the achieved rate instead of hiding behind more requests.
Every request is recorded as (offset from the start in s, duration in ms, HTTP status; 0 = no answer, 1 when
the answer had a Retry-After header else 0) and written to $STACKOPS_LOADTEST_SAMPLES when locust quits;
stackops_loadtest.py does the arithmetic. A stage with a `url` (the rate-limit stage aimed at the edge) sends to
that URL instead of --host. $STACKOPS_LOADTEST_CA_FILE, when set, is the CA HTTPS answers are verified against
(otherwise locust does not verify certificates).
"""

from __future__ import annotations

import json
import os
import time

import gevent.ssl
from locust import FastHttpUser, LoadTestShape, constant_throughput, events, task

with open(os.environ["STACKOPS_LOADTEST_PLAN"], encoding="utf-8") as _plan:
    PLAN = json.load(_plan)
SAMPLES = []
CA_FILE = os.environ.get("STACKOPS_LOADTEST_CA_FILE", "")
_TLS_CONTEXT = (
    gevent.ssl.create_default_context(cafile=CA_FILE) if CA_FILE else gevent.ssl._create_unverified_context()
)
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
    headers = getattr(response, "headers", None) or {}
    retry_after = 1 if status and headers.get("Retry-After") else 0
    SAMPLES.append(
        (round(_offset() - (response_time or 0) / 1000, 4), round(response_time or 0, 3), int(status), retry_after)
    )


@events.quitting.add_listener
def _write_samples(**_kwargs):
    with open(os.environ["STACKOPS_LOADTEST_SAMPLES"], "w", encoding="utf-8") as out:
        json.dump(SAMPLES, out)


class StagedUser(FastHttpUser):
    """One request a second to the path of the stage running now."""

    wait_time = constant_throughput(1)
    insecure = not CA_FILE

    # One TLS context for every connection: making one per connection (locust's default) costs each of hundreds
    # of users starting at once a CA load or more, which alone held a 200-user stage's first seconds back.
    @staticmethod
    def ssl_context_factory():
        return _TLS_CONTEXT

    @task
    def request(self):
        stage = _stage(_offset())
        self.client.get(stage.get("url", "") + stage["path"], name=stage["name"])


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
