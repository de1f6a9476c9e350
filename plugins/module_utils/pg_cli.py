# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The command line of the backup and drill units (standard library only).

``python3 -m <package>.pg_backup_core|pg_drill_core --config FILE [--check | --write-metrics DIR [--run-result R]]``:
the settings come from a JSON object in FILE, the result goes to stdout as JSON (the journal keeps it), an error
goes to stderr as one line and exits 1. ``--write-metrics`` is the unit's ExecStopPost: the run's result comes from
``--run-result`` or systemd's SERVICE_RESULT.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys

from ansible_collections.stackops.platform.plugins.module_utils.pg_backup_manifest import PgBackupError
from ansible_collections.stackops.platform.plugins.module_utils.pg_backup_metrics import run_result_from


def terminate_on_signal(signum, frame):
    raise SystemExit(128 + signum)


def unit_main(argv, *, tool, what, description, metrics_file, run, check, write_metrics, run_result=True):
    """Parse ``argv`` and call ``run(params)``, ``check(params)`` or ``write_metrics(params, dir, success)``.

    ``tool`` prefixes error lines (``pg_backup: ...``); ``what`` names the run (backup, restore drill).
    ``run_result=False``: the metrics come from a state file the run wrote, so ``write_metrics(params, dir)``
    needs no run result (no ``--run-result``, no SERVICE_RESULT).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", required=True, help=f"JSON file with the {tool} option names")
    parser.add_argument("--check", action="store_true", help="only report what would be done")
    parser.add_argument(
        "--write-metrics",
        metavar="DIR",
        help=f"no {what}: write DIR/{metrics_file} for node exporter's textfile collector",
    )
    if run_result:
        parser.add_argument(
            "--run-result",
            choices=("success", "failure"),
            help=f"result of the {what} run for --write-metrics (default: $SERVICE_RESULT, set by systemd)",
        )
    args = parser.parse_args(argv)
    if args.write_metrics is not None and args.check:
        parser.error("--check and --write-metrics cannot be combined")
    if run_result and args.run_result and args.write_metrics is None:
        parser.error("--run-result only goes with --write-metrics")
    # systemd stops with SIGTERM: unwind through the cleanup paths instead of dying mid-write.
    signal.signal(signal.SIGTERM, terminate_on_signal)
    try:
        with open(args.config, encoding="utf-8") as handle:
            params = json.load(handle)
        if not isinstance(params, dict):
            raise PgBackupError(f"config {args.config} must hold a JSON object of {tool} options")
        if args.write_metrics is not None and not run_result:
            result = write_metrics(params, args.write_metrics)
        elif args.write_metrics is not None:
            result = write_metrics(params, args.write_metrics, run_result_from(args.run_result, what=what))
        else:
            result = check(params) if args.check else run(params)
    except (OSError, ValueError, PgBackupError) as exc:
        message = str(exc)
        if isinstance(exc, ValueError) and not isinstance(exc, PgBackupError):
            message = f"config {args.config} is not valid JSON: {exc}"
        sys.stderr.write(f"{tool}: {message}\n")
        return 1
    sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return 0
