# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Staged load test against one URL with locust (called by playbooks/loadtest.yml; usable on its own).

    python3 stackops_loadtest.py --spec '{"url": "https://staging.example.com", "stages": [{"rps": 50, "duration": 60}],
        "rate_limit": {"rps": 10, "burst": 20, "stage_rps": 50, "duration": 10, "path": "/"},
        "thresholds": {"p95_seconds": 0.3, "error_ratio": 0.01}, "ca_file": ""}' --result result.json

Prints one line per stage (achieved RPS, p50/p95/p99, error ratio, 429s, PASS/FAIL) and writes the figures as
JSON. Exit 0: every stage passed; 3: a stage failed its thresholds; 2: bad input or locust did not run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The plan and the arithmetic live in the collection's module_utils (unit-tested there).
sys.path.insert(0, str(HERE.parents[2] / "plugins" / "module_utils"))
import loadtest_stats as lt  # noqa: E402


def run_locust(url: str, plan: list, python: str, workdir: Path, ca_file: str = "") -> list:
    plan_file, samples_file = workdir / "plan.json", workdir / "samples.json"
    plan_file.write_text(json.dumps(plan))
    env = dict(os.environ, STACKOPS_LOADTEST_PLAN=str(plan_file), STACKOPS_LOADTEST_SAMPLES=str(samples_file))
    if ca_file:
        env["STACKOPS_LOADTEST_CA_FILE"] = ca_file
    argv = [
        python, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--headless", "--host", url,
        "--only-summary", "--loglevel", "ERROR", "--exit-code-on-error", "0", "--stop-timeout", "2",
    ]  # fmt: skip
    total = plan[-1]["end"]
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=total + 60, check=False)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"locust did not finish within {total + 60:.0f} s") from None
    if proc.returncode != 0 or not samples_file.exists():
        raise RuntimeError(f"locust failed (exit {proc.returncode}): {(proc.stderr or proc.stdout)[-2000:]}")
    return json.loads(samples_file.read_text())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--spec", required=True, help="JSON: url, stages, rate_limit, path, thresholds")
    parser.add_argument("--result", required=True, help="where to write the figures (JSON)")
    parser.add_argument("--python", default=sys.executable, help="the Python that has locust")
    args = parser.parse_args(argv)
    try:
        spec = json.loads(args.spec)
        url = str(spec.get("url") or "")
        if not url.startswith(("http://", "https://")):
            raise lt.LoadTestError(f"url must be an http(s) URL, got {url!r}")
        plan = lt.build_plan(spec.get("stages"), spec.get("rate_limit"), spec.get("path") or "/")
        thresholds = spec.get("thresholds") or {}
        lt.summarise(plan, [], thresholds)  # checks the thresholds before any load is sent
        ca_file = str(spec.get("ca_file") or "")
        if ca_file and not Path(ca_file).is_file():
            raise lt.LoadTestError(f"loadtest_ca_file {ca_file!r} is not a file (the CA to verify HTTPS answers with)")
    except (ValueError, lt.LoadTestError) as exc:
        print(f"bad load test spec: {exc}", file=sys.stderr)
        return 2
    print(f"load test of {url}: {len(plan)} stages, {plan[-1]['end']:g} s", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="stackops-loadtest-") as tmp:
            samples = run_locust(url.rstrip("/"), plan, args.python, Path(tmp), ca_file)
    except RuntimeError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    results = lt.summarise(plan, samples, thresholds)
    for line in lt.render_table(results):
        print(line)
    passed = all(r["passed"] for r in results)
    Path(args.result).write_text(json.dumps({"url": url, "passed": passed, "stages": results}, indent=2))
    return 0 if passed else 3


if __name__ == "__main__":
    sys.exit(main())
