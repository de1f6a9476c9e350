"""Guarded deploys on a real host: fail fast at start, post-switch watch with automatic switch back.

ONE throwaway container from the molecule base image (systemd, nginx on 127.0.0.1:<free port>), provisioned as in
benchmarks/zero_downtime.py (PostgreSQL, Redis, api and worker roles), then playbooks/deploy.yml as a user runs it:

1. a good release (no load yet);
2. a release whose process exits at start (a bad ERROR_RATIO file: migrations pass, the server refuses to start):
   the deploy must fail in the idle colour's health wait, in seconds, with the unit's journal lines in the message;
3. under paced load through nginx, a release that passes its health check but answers 500 to 10 % of requests
   (the sample app's ERROR_RATIO release file): the deploy must switch back by itself within the watch window;
4. under the same load, a good release: the watch passes and the summary shows its figures;
5. under the same load, a canary (deploy_strategy=canary, 10 -> 50 -> 100 %) of a good release: promoted, each
   step watched;
6. under the same load, a canary of the 10 % 500s release: aborted, every request back on the old colour.

After 2, 3 and 6, `current`, both colour links, nginx's upstream file and the colour nginx serves must be as before.
Prints the measured figures and PASS/FAIL per check; exits 1 on any FAIL. Removes the container at the end.

    . scripts/env.sh && python benchmarks/deploy_guard.py [--rate 100] [--watch-seconds 15] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "zero_downtime"))

import zero_downtime as zd  # the container, inventory and playbook helpers of that benchmark
from zd_load import LoadGenerator

APP = zd.APP
# The api role's restart task: it restarts the colour and waits for its health (one module call).
WAIT_TASK = "Restart and health-check"
WATCH_TASK = "Watch through the access log"
SWITCH_BACK_FAIL = "Fail the deploy, the old colour serves again"
CANARY_RECORD = "Record the step's figures"
CANARY_ABORT_FAIL = "Fail the deploy with the canary's figures"
CANARY_STEPS = [10, 50, 100]
EXITS_MESSAGE = "ERROR_RATIO holds 'lots'"


def build_variant(version: str, outdir: Path, files: dict[str, str]) -> Path:
    """sample-app-<version>.tar.gz without its top directory, with extra or replaced files (relative paths)."""
    out = zd.run(["bash", str(zd.REPO_ROOT / "scripts" / "build-sample-release.sh"), version]).stdout.split()
    built = Path(out[0])
    top = f"sample-app-{version}"
    unpacked = outdir / f"unpack-{version}"
    with tarfile.open(built) as tar:
        tar.extractall(unpacked, filter="data")
    built.unlink()
    Path(f"{built}.sha256").unlink(missing_ok=True)
    for name, text in files.items():
        (unpacked / top / name).write_text(text)
    archive = outdir / built.name
    with tarfile.open(archive, "w:gz") as tar:
        for child in sorted((unpacked / top).iterdir()):
            tar.add(child, arcname=child.name)
    shutil.rmtree(unpacked)
    return archive


def host_state(container: zd.Container) -> dict:
    """What must not move when a deploy is refused: current, the colour links, nginx's upstream, what it serves."""
    root = f"/srv/{APP}"
    return {
        "current": container.exec("readlink", f"{root}/current"),
        "blue": container.exec("readlink", f"{root}/colors/blue"),
        "green": container.exec("readlink", f"{root}/colors/green"),
        "upstream_file": container.exec("cat", f"/etc/nginx/conf.d/{APP}_upstream.conf"),
        "active": json.loads(container.exec("cat", f"/var/lib/stackops/blue_green/{APP}.json") or "{}").get("active"),
        "served": zd.served_version(container.port),
    }


def named(task: dict, prefix: str) -> bool:
    return task["task"]["name"].split(" : ", 1)[-1].startswith(prefix)


def host_result(data: dict, prefix: str) -> dict:
    """The last host result of the last task whose name (after any "role : " prefix) starts with prefix."""
    found = [r for t in zd.tasks(data) if named(t, prefix) for r in t["hosts"].values()]
    return found[-1] if found else {}


def task_time(data: dict, prefix: str) -> float | None:
    found = [zd.task_seconds(t) for t in zd.tasks(data) if named(t, prefix)]
    return found[-1] if found else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=100, help="requests per second through nginx during 3 and 4")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--watch-seconds", type=float, default=15, help="deploy_watch_seconds (max 30)")
    parser.add_argument("--provision-timeout", type=float, default=1500, help="seconds for the provisioning play")
    parser.add_argument("--keep", action="store_true", help="leave the container running (debugging)")
    args = parser.parse_args()
    if not 2 <= args.watch_seconds <= 30:
        parser.error("--watch-seconds must be 2..30 (a bounded load test)")
    if not os.environ.get("ANSIBLE_COLLECTIONS_PATH"):
        parser.error("run inside the project environment: . scripts/env.sh")
    state_dir = Path(os.environ.get("STACKOPS_STATE", Path.home() / ".cache/stackops-platform/state"))
    image = (state_dir / "base-image").read_text().strip()
    workdir = Path(tempfile.mkdtemp(prefix="deploy-guard-"))
    (workdir / "ansible-tmp").mkdir()
    container = zd.Container(image, f"deploy-guard-bench-{os.getpid()}", zd.free_port())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return bench(args, workdir, container)
    finally:
        if args.keep:
            zd.log(f"kept container {container.name} (docker rm -f {container.name}) and {workdir}")
        else:
            container.remove()
            shutil.rmtree(workdir, ignore_errors=True)


def bench(args, workdir: Path, container: zd.Container) -> int:
    releases = {
        "good": build_variant("9.2.0", workdir, {}),
        # A bad setting in the release: migrations pass, the server exits at start (config.load refuses it).
        "exits": build_variant("9.2.1-exits", workdir, {"ERROR_RATIO": "lots\n"}),
        "errors": build_variant("9.2.2-errors", workdir, {"ERROR_RATIO": "0.1\n"}),
        "next": build_variant("9.2.3", workdir, {}),
        "canary": build_variant("9.2.4", workdir, {}),
        "canary-errors": build_variant("9.2.5-errors", workdir, {"ERROR_RATIO": "0.1\n"}),
    }
    zd.log(f"starting container {container.name} (nginx on 127.0.0.1:{container.port})")
    container.start()
    inventory = zd.write_inventory(workdir, container.name)
    data = json.loads(inventory.read_text())
    data["all"]["vars"].update(
        deploy_watch_seconds=args.watch_seconds,
        deploy_watch_interval=0.5,
        deploy_watch_min_requests=30,
        deploy_watch_max_error_ratio=0.01,
        deploy_watch_max_p95_ms=300,
    )
    inventory.write_text(json.dumps(data, indent=2))
    prepare = workdir / "prepare.yml"
    prepare.write_text(zd.PREPARE)
    deploy_yml = zd.REPO_ROOT / "playbooks" / "deploy.yml"

    def deploy(name: str, release_id: str, **extra) -> dict:
        extravars = {"release_archive": str(releases[name]), "release_id": release_id, **extra}
        out = zd.playbook(workdir, inventory, deploy_yml, extravars, 900)
        zd.log(f"deploy {name} ({release_id}): rc={out['rc']} wall={out['wall']:.1f}s")
        return out

    zd.log("provisioning PostgreSQL, Redis, api and worker roles")
    out = zd.playbook(workdir, inventory, prepare, timeout=args.provision_timeout)
    if out["rc"]:
        zd.log(f"provisioning failed: {zd.first_failure(out)}")
        return 1
    out = deploy("good", "dg-1")
    if out["rc"]:
        zd.log(f"first deploy failed: {zd.first_failure(out)}")
        return 1
    checks: list[tuple[str, bool, str]] = []

    # 2. A release whose process exits at start.
    before = host_state(container)
    out = deploy("exits", "dg-2")
    exits_wall = out["wall"]
    wait_seconds = task_time(out, WAIT_TASK)
    wait = host_result(out, WAIT_TASK)
    after = host_state(container)
    checks.append(("exits at start: deploy failed", out["rc"] != 0, f"rc={out['rc']}"))
    checks.append((
        "exits at start: failed in the health wait, naming the unit's state and its journal",
        bool(wait.get("failed"))
        and any(w in str(wait.get("reason", "")) for w in ("restart-looping", "failed", "stopped"))
        and EXITS_MESSAGE in str(wait.get("msg", "")),
        str(wait.get("reason", zd.first_failure(out)))[:200],
    ))  # fmt: skip
    checks.append(("exits at start: current, colour links, nginx unchanged", after == before, json.dumps(after)))

    # 3. Under load: a release answering 500 to 10 % of requests.
    load = LoadGenerator("127.0.0.1", container.port, rate=args.rate, connections=args.connections)
    load.start()
    time.sleep(2)
    before = host_state(container)
    out = deploy("errors", "dg-3")
    watch = host_result(out, WATCH_TASK)
    switch_back = host_result(out, SWITCH_BACK_FAIL)
    time.sleep(1)
    after = host_state(container)
    checks.append(("10 % 500s: deploy failed", out["rc"] != 0, f"rc={out['rc']}"))
    checks.append((
        "10 % 500s: breach seen within the watch window",
        bool(watch.get("breached")) and float(watch.get("elapsed", 1e9)) <= args.watch_seconds,
        f"{watch.get('reason')} after {watch.get('elapsed')}s of {args.watch_seconds:g}s",
    ))  # fmt: skip
    checks.append(("10 % 500s: switched back (deploy message)", "switched back" in switch_back.get("msg", ""),
                   switch_back.get("msg", zd.first_failure(out))[:300]))  # fmt: skip
    checks.append(("10 % 500s: current, colour links, nginx unchanged", after == before, json.dumps(after)))

    # 4. Under load: a good release passes the watch.
    out = deploy("next", "dg-4")
    good_watch = host_result(out, WATCH_TASK)
    summary = host_result(out, "Show the deploy summary").get("msg", "")
    checks.append(("good release under load: deployed", out["rc"] == 0, zd.first_failure(out) if out["rc"] else "rc=0"))
    checks.append(("good release under load: watch passed with enough traffic",
                   good_watch.get("breached") is False and bool(good_watch.get("enough_traffic")),
                   str(good_watch.get("reason"))))  # fmt: skip
    checks.append(("good release: summary shows the watch figures", "Watch of " in summary, summary[-240:]))

    # 5. Under load: a canary of a good release, 10 -> 50 -> 100 %, watched at each step, promoted.
    canary_vars = {"deploy_strategy": "canary", "deploy_canary_steps": CANARY_STEPS,
                   "deploy_canary_step_seconds": args.watch_seconds / 3}  # fmt: skip
    out = deploy("canary", "dg-5", **canary_vars)
    canary = host_result(out, CANARY_RECORD).get("ansible_facts", {}).get("__deploy_canary", {})
    steps = canary.get("steps", [])
    checks.append(("canary under load: promoted", out["rc"] == 0, zd.first_failure(out) if out["rc"] else "rc=0"))
    checks.append(("canary under load: every step routed its weight and watched the new colour",
                   [s.get("weight") for s in steps] == CANARY_STEPS
                   and all(s["weights"].get(canary.get("color")) == s["weight"] for s in steps)
                   and all(s["watch"].get("requests", 0) > 0 and not s["watch"].get("breached") for s in steps[:-1]),
                   json.dumps(steps)[:400]))  # fmt: skip

    # 6. Under load: a canary of the 10 % 500s release is aborted at its first step, everything as before.
    before = host_state(container)
    out = deploy("canary-errors", "dg-6", **canary_vars)
    aborted = host_result(out, CANARY_ABORT_FAIL)
    time.sleep(1)
    after = host_state(container)
    checks.append(("canary of a bad release: aborted", out["rc"] != 0 and "aborted" in aborted.get("msg", ""),
                   aborted.get("msg", zd.first_failure(out))[:300]))  # fmt: skip
    checks.append(("canary of a bad release: current, colour links, nginx unchanged", after == before,
                   json.dumps(after)[:200]))  # fmt: skip
    time.sleep(1)
    stats = load.stop()

    print("\n== guarded deploy benchmark ==")
    print(
        f"exits at start           : the health wait saw the unit die after {wait.get('elapsed', '?')}s "
        f"({wait.get('active_state')}/{wait.get('sub_state')}); that task took {wait_seconds or 0:.2f}s with Ansible's "
        f"overhead, the whole refused deploy {exits_wall:.1f}s"
    )
    print(f"                           reason: {wait.get('reason')}")
    print(
        f"10 % 500s release        : served {watch.get('requests')} requests, 5xx {watch.get('errors_5xx')} "
        f"(error ratio {float(watch.get('error_ratio', 0)):.1%}), p95 {watch.get('p95_ms')} ms; breach seen "
        f"{watch.get('elapsed')}s into the {args.watch_seconds:g}s watch, switched back"
    )
    print(
        f"good release watch       : {good_watch.get('requests')} requests, 5xx {good_watch.get('errors_5xx')}, "
        f"p95 {good_watch.get('p95_ms')} ms over {good_watch.get('elapsed')}s"
    )
    for step in steps:
        watch_figures = step.get("watch") or {}
        elapsed = float(watch_figures.get("elapsed") or 0)
        share = watch_figures.get("requests", 0) / (args.rate * elapsed) if elapsed else None
        print(
            f"canary step {step['weight']:>3} %       : weights {step['weights']}, switch {step['switch_seconds']}s"
            + (f", new colour served {watch_figures.get('requests')} requests in {elapsed:g}s "
               f"(about {share:.0%} of the paced {args.rate:.0f}/s), 5xx {watch_figures.get('errors_5xx')}"
               if share is not None else "")
        )  # fmt: skip
    print(f"canary abort             : {aborted.get('msg', '?')[:400]}")
    print(
        f"load through nginx       : {stats.requests} requests at {args.rate:.0f}/s paced, statuses "
        f"{dict(stats.statuses)}, socket errors {stats.socket_errors}; "
        f"by version {dict(sorted(stats.versions.items()))}"
    )
    ok = True
    for name, passed, detail in checks:
        ok &= bool(passed)
        print(f"[{'PASS' if passed else 'FAIL'}] {name}: {detail}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
