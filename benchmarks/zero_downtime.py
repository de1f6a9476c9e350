"""Zero-downtime benchmark of playbooks/deploy.yml and playbooks/rollback.yml under load.

Starts ONE throwaway container from the molecule base image (systemd, same options as
.config/molecule/config.yml), nginx published on 127.0.0.1:<free port> only; provisions PostgreSQL and
Redis (Debian packages), the api and worker roles; deploys a first release, then, while a paced HTTP load
runs through nginx, deploys --cycles new releases (one of them a bad release whose /health answers 503:
that deploy must fail before the switch) and finally rolls back. Prints requests, non-2xx, socket errors,
requests/s, switch time p50/p95 (the blue_green task of each deploy), the rollback task time and how many
responses came from the bad release (must be 0). Removes the container and its temporary files at the end.

    . scripts/env.sh && python benchmarks/zero_downtime.py [--cycles 10] [--rate 300] [--keep]
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent / "zero_downtime"))

from zd_load import LoadGenerator  # noqa: E402

APP = "api"
DB_PASSWORD = "zero-downtime-bench-0123"  # throwaway container only
SWITCH_TASK = "Switch nginx to the colour"
MAX_CYCLES = 20


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(argv: list[str], *, check: bool = True, env: dict | None = None, timeout: float = 300):
    return subprocess.run(argv, check=check, env=env, timeout=timeout, capture_output=True, text=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- releases


def build_release(version: str, outdir: Path, *, bad: bool = False) -> Path:
    """Build sample-app-<version>.tar.gz with the repo's script into outdir, without its top directory (the release
    module extracts archives as they are: deploy_strip_components=0 then skips the unpack tasks);
    bad=True adds the FAIL_HEALTH marker that makes the release's /health answer 503."""
    out = run(["bash", str(REPO_ROOT / "scripts" / "build-sample-release.sh"), version]).stdout.split()
    built = Path(out[0])
    top = f"sample-app-{version}"
    unpacked = outdir / f"unpack-{version}"
    with tarfile.open(built) as tar:
        tar.extractall(unpacked, filter="data")
    built.unlink()
    Path(f"{built}.sha256").unlink(missing_ok=True)
    if bad:
        (unpacked / top / "FAIL_HEALTH").write_text("bad release for the zero-downtime benchmark\n")
    archive = outdir / built.name
    with tarfile.open(archive, "w:gz") as tar:
        for child in sorted((unpacked / top).iterdir()):
            tar.add(child, arcname=child.name)
    shutil.rmtree(unpacked)
    return archive


# ---------------------------------------------------------------- container


class Container:
    def __init__(self, image: str, name: str, port: int):
        self.image, self.name, self.port = image, name, port

    def start(self) -> None:
        run(
            [
                "docker", "run", "-d", "--name", self.name, "--hostname", self.name,
                "--cap-add", "SYS_ADMIN", "--cap-add", "SYS_PTRACE",
                "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
                "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
                "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro", "--cgroupns=host",
                "-p", f"127.0.0.1:{self.port}:80",
                "--label", "stackops.benchmark=zero_downtime",
                self.image, "/lib/systemd/systemd",
            ]
        )  # fmt: skip
        for _attempt in range(60):
            state = run(["docker", "exec", self.name, "systemctl", "is-system-running"], check=False).stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(1)
        raise RuntimeError(f"systemd in {self.name} did not come up (state {state!r})")

    def exec(self, *argv: str) -> str:
        return run(["docker", "exec", self.name, *argv], check=False).stdout.strip()

    def remove(self) -> None:
        run(["docker", "rm", "-f", "-v", self.name], check=False, timeout=60)


# ---------------------------------------------------------------- ansible


def write_inventory(workdir: Path, container: str, watch_seconds: float = 5) -> Path:
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "community.docker.docker",
                "ansible_host": container,
                "ansible_python_interpreter": "/usr/bin/python3",
                "api_app_name": APP,
                "api_env": {
                    "DATABASE_URL": f"postgresql://app:{DB_PASSWORD}@127.0.0.1:5432/app",
                    "REDIS_URL": "redis://127.0.0.1:6379/0",
                },
                # Inside the container's own network namespace; the host publishes it on 127.0.0.1 only.
                "api_nginx_listen": "80",
                "api_stop_timeout": 10,
                "worker_instances": 1,
                "deploy_verify_header": "X-App-Color",
                "deploy_keep_releases": 4,
                "deploy_strip_components": 0,
                # The post-switch watch waits this long after each switch (the local inventory's guardrail).
                "deploy_watch_seconds": watch_seconds,
                "bench_db_password": DB_PASSWORD,
            },
            "children": {"api": {"hosts": {"zd-app": {}}}, "worker": {"hosts": {"zd-app": {}}}},
        }
    }
    path = workdir / "inventory.json"
    path.write_text(json.dumps(inventory, indent=2))
    return path


def ansible_env(workdir: Path) -> dict:
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"),
        ANSIBLE_ROLES_PATH=str(REPO_ROOT / "roles"),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCAL_TEMP=str(workdir / "ansible-tmp"),
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_PIPELINING="1",
    )
    return env


def playbook(workdir: Path, inventory: Path, book: Path, extravars: dict | None = None, timeout: float = 300) -> dict:
    argv = ["ansible-playbook", "-i", str(inventory), str(book)]
    if extravars:
        argv += ["-e", json.dumps(extravars)]
    started = time.monotonic()
    proc = run(argv, check=False, env=ansible_env(workdir), timeout=timeout)
    try:
        data = json.loads(proc.stdout[proc.stdout.index("{") :])
    except ValueError:
        data = {"plays": [], "stats": {}}
    data["rc"] = proc.returncode
    data["wall"] = time.monotonic() - started
    data["stderr"] = proc.stderr[-2000:]
    return data


def _ts(value: str) -> float:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def tasks(data: dict, play_prefix: str = "") -> list[dict]:
    return [t for p in data.get("plays", []) if p["play"]["name"].startswith(play_prefix) for t in p["tasks"]]


def task_seconds(task: dict) -> float:
    return _ts(task["task"]["duration"]["end"]) - _ts(task["task"]["duration"]["start"])


def switch_seconds(data: dict) -> float | None:
    found = [task_seconds(t) for t in tasks(data) if t["task"]["name"].startswith(SWITCH_TASK)]
    return found[-1] if found else None


def first_failure(data: dict) -> str:
    for task in tasks(data):
        for result in task["hosts"].values():
            if result.get("failed"):
                return f"{task['task']['name']}: {str(result.get('msg', ''))[:300]}"
    return data.get("stderr", "")[-300:]


PREPARE = """---
- name: Backing services for the benchmark (Debian packages)
  hosts: api
  gather_facts: false
  tasks:
    - name: Install PostgreSQL and Redis
      ansible.builtin.apt:
        # Everything the api and worker roles install too, in one apt run.
        name: [postgresql, redis-server, nginx, python3-psycopg2, python3-redis]
        update_cache: true
    - name: Start PostgreSQL and Redis
      ansible.builtin.systemd_service:
        name: "{{ item }}"
        state: started
      loop: [postgresql, redis-server]
    - name: Wait for PostgreSQL and Redis
      ansible.builtin.wait_for:
        host: 127.0.0.1
        port: "{{ item }}"
      loop: [5432, 6379]
    - name: Create the app's database role and database
      ansible.builtin.command:
        argv: [runuser, -u, postgres, --, psql, -v, ON_ERROR_STOP=1,
               -c, "CREATE ROLE app LOGIN PASSWORD '{{ bench_db_password }}'", -c, "CREATE DATABASE app OWNER app"]
      changed_when: true

- name: The api and worker roles
  hosts: api
  tasks:
    - name: Apply the api role
      ansible.builtin.include_role:
        name: stackops.platform.api
    - name: Apply the worker role
      ansible.builtin.include_role:
        name: stackops.platform.worker
"""


def served_version(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        resp.read()
        return resp.getheader("X-App-Version", "-")
    finally:
        conn.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=10, help="deploys under load (one of them bad), max 20")
    parser.add_argument("--rate", type=float, default=200, help="requests per second through nginx")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=540, help="start no deploy cycle after this (run bound)")
    parser.add_argument(
        "--watch-seconds", type=float, default=5, help="deploy_watch_seconds of each deploy (default 5, as local)"
    )
    parser.add_argument("--keep", action="store_true", help="leave the container running (debugging)")
    args = parser.parse_args()
    if not 2 <= args.cycles <= MAX_CYCLES:
        parser.error(f"--cycles must be 2..{MAX_CYCLES}")
    if not os.environ.get("ANSIBLE_COLLECTIONS_PATH"):
        parser.error("run inside the project environment: . scripts/env.sh")

    deadline = time.monotonic() + args.max_seconds
    state_dir = Path(os.environ.get("STACKOPS_STATE", Path.home() / ".cache/stackops-platform/state"))
    image = (state_dir / "base-image").read_text().strip()
    workdir = Path(tempfile.mkdtemp(prefix="zero-downtime-"))
    (workdir / "ansible-tmp").mkdir()
    container = Container(image, f"zero-downtime-bench-{os.getpid()}", free_port())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return bench(args, workdir, container, deadline)
    finally:
        if args.keep:
            log(f"kept container {container.name} (docker rm -f {container.name}) and {workdir}")
        else:
            container.remove()
            shutil.rmtree(workdir, ignore_errors=True)


def bench(args, workdir: Path, container: Container, deadline: float) -> int:
    bad_cycle = 2  # early, so that a time-bounded run always exercises it
    versions = [f"9.0.{i}" for i in range(args.cycles + 1)]
    versions[bad_cycle] += "-bad"
    log(f"building {len(versions)} releases (bad one: {versions[bad_cycle]})")
    archives = [build_release(v, workdir, bad=(i == bad_cycle)) for i, v in enumerate(versions)]

    log(f"starting container {container.name} (nginx on 127.0.0.1:{container.port})")
    container.start()
    inventory = write_inventory(workdir, container.name, args.watch_seconds)
    prepare = workdir / "prepare.yml"
    prepare.write_text(PREPARE)
    deploy_yml = REPO_ROOT / "playbooks" / "deploy.yml"

    log("provisioning PostgreSQL, Redis, api and worker roles")
    data = playbook(workdir, inventory, prepare, timeout=600)
    if data["rc"]:
        log(f"provisioning failed: {first_failure(data)}")
        return 1
    log(f"provisioned in {data['wall']:.0f}s; first deploy (no load yet)")
    data = playbook(workdir, inventory, deploy_yml, {"release_archive": str(archives[0]), "release_id": "zd-00"})
    if data["rc"]:
        log(f"first deploy failed: {first_failure(data)}")
        return 1

    load = LoadGenerator("127.0.0.1", container.port, rate=args.rate, connections=args.connections)
    load.start()
    time.sleep(2)
    cycles = []
    good_before_bad = None
    checks: list[tuple[str, bool, str]] = []
    for i in range(1, args.cycles + 1):
        if time.monotonic() > deadline:
            log(f"time budget spent: stopping before cycle {i}")
            break
        current_before = container.exec("readlink", f"/srv/{APP}/current")
        data = playbook(
            workdir, inventory, deploy_yml, {"release_archive": str(archives[i]), "release_id": f"zd-{i:02d}"}
        )
        bad = i == bad_cycle
        sw = switch_seconds(data)
        cycles.append({"cycle": i, "version": versions[i], "rc": data["rc"], "switch": sw, "wall": data["wall"]})
        log(
            f"cycle {i:2d} {versions[i]:>10}: rc={data['rc']} wall={data['wall']:.1f}s "
            f"switch={'-' if sw is None else f'{sw:.2f}s'}" + (f" ({first_failure(data)[:160]})" if data["rc"] else "")
        )
        if bad:
            good_before_bad = versions[i - 1]
            current_after = container.exec("readlink", f"/srv/{APP}/current")
            checks.append(("bad deploy failed", data["rc"] != 0, f"rc={data['rc']}"))
            checks.append(("bad deploy: current unchanged", current_after == current_before, current_after))
            served = served_version(container.port)
            checks.append(("bad deploy: nginx serves the old release", served == versions[i - 1], served))
        elif data["rc"]:
            checks.append((f"cycle {i} deploy succeeded", False, first_failure(data)))

    time.sleep(1)
    log("rolling back to the previous release (under load)")
    before_rb = served_version(container.port)
    data = playbook(workdir, inventory, REPO_ROOT / "playbooks" / "rollback.yml")
    rb_tasks = tasks(data, "Roll back the api hosts")
    rb_total = sum(task_seconds(t) for t in rb_tasks) if rb_tasks else None
    rb_span = None
    if rb_tasks:
        rb_span = _ts(rb_tasks[-1]["task"]["duration"]["end"]) - _ts(rb_tasks[0]["task"]["duration"]["start"])
    rb_switch = switch_seconds(data)
    rb_module = next(
        (r.get("duration") for t in rb_tasks if t["task"]["name"].startswith(SWITCH_TASK) for r in t["hosts"].values()),
        None,
    )
    summary = [t for t in rb_tasks if t["task"]["name"] == "Show the rollback summary"]
    rb_msgs = [r.get("msg", "") for t in summary for r in t["hosts"].values()]
    rb_msg = rb_msgs[-1] if rb_msgs else ""
    after_rb = served_version(container.port)
    checks.append(("rollback succeeded", data["rc"] == 0, first_failure(data) if data["rc"] else "rc=0"))
    last_good = [versions[0]] + [c["version"] for c in cycles if c["rc"] == 0]
    expected_rb = last_good[-2] if len(last_good) >= 2 else None
    checks.append(("rollback serves the previous release", after_rb == expected_rb, f"{before_rb} -> {after_rb}"))
    time.sleep(2)
    stats = load.stop()

    switches = [c["switch"] for c in cycles if c["rc"] == 0 and c["switch"] is not None]
    bad_hits = stats.versions.get(versions[bad_cycle], 0)
    checks.append(("bad release got no traffic", bad_hits == 0, str(bad_hits)))
    checks.append(("no non-2xx, no socket errors", stats.non_2xx == 0 and stats.socket_errors == 0,
                   f"{stats.non_2xx}/{stats.socket_errors}"))  # fmt: skip

    print("\n== zero-downtime benchmark ==")
    print(f"deploy cycles under load : {len(cycles)} ({sum(1 for c in cycles if c['rc'] == 0)} switched, "
          f"bad release {versions[bad_cycle]} expected to fail)")  # fmt: skip
    print(f"load                     : {args.connections} keep-alive connections, paced at {args.rate:.0f} req/s")
    print(f"total requests           : {stats.requests}")
    print(f"non-2xx responses        : {stats.non_2xx}  {dict(stats.statuses)}")
    print(f"socket errors            : {stats.socket_errors}")
    print(f"stale keep-alive retries : {stats.stale_retries} (idle client connections nginx closed on reload; "
          "retried once on a new connection, succeeded)")  # fmt: skip
    print(f"requests/s               : {stats.requests / stats.seconds:.1f} over {stats.seconds:.1f}s")
    if switches:
        print(f"switch time (blue_green) : p50 {statistics.median(switches):.2f}s  p95 {pct(switches, 0.95):.2f}s  "
              f"(n={len(switches)})")  # fmt: skip
    print(f"deploy wall time         : p50 {statistics.median([c['wall'] for c in cycles]):.1f}s per cycle")
    if rb_total is not None:
        print(f"rollback task time       : {rb_total:.2f}s (sum of api-play task durations; first start to last end "
              f"{rb_span:.2f}s)")  # fmt: skip
        print(f"rollback switch          : blue_green task {rb_switch or 0:.2f}s, of which the module itself "
              f"{rb_module or 0:.2f}s (health check, nginx -t, reload, verify)")  # fmt: skip
    print(f"rollback playbook says   : {rb_msg}")
    for task in sorted(rb_tasks, key=task_seconds, reverse=True)[:8]:
        print(f"  rollback task {task_seconds(task):5.2f}s  {task['task']['name']}")
    print(f"responses by version     : {dict(sorted(stats.versions.items()))}")
    print(f"bad release requests     : {bad_hits} (version {versions[bad_cycle]}; previous good {good_before_bad})")
    for when, what in sorted(set(stats.failures))[:10]:
        print(f"  failure at +{when - load.started:.1f}s: {what}")
    ok = True
    for name, passed, detail in checks:
        ok &= passed
        print(f"[{'PASS' if passed else 'FAIL'}] {name}: {detail}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
