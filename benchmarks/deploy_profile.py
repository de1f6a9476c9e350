"""Deploy profile: where the time of one guarded deploy (playbooks/deploy.yml) goes, on one host.

Starts ONE throwaway container from the Molecule base image (systemd; benchmarks/zero_downtime.py's container and
provisioning: PostgreSQL, Redis, nginx, the api and worker roles), then deploys the sample release
(scripts/build-sample-release.sh, one top directory, deployed with the playbook's defaults) once (the first
deploy) and --redeploys times more (a new release each time, the usual case). Each deploy runs with the
ansible.posix.profile_tasks callback; the script prints its per-task times (first deploy, and the median of the
redeploys per task) and the totals: the playbook's wall time (ansible-playbook start to exit) and the sum of the
task times. --payload-mb adds incompressible files to each release (a vendored app of that size; the issue
measured a 7.9 MB app). The machine's load average is printed before and after: figures taken on a busy
machine are slower than on an idle one.

    . scripts/env.sh && python benchmarks/deploy_profile.py [--redeploys 3] [--payload-mb 8] [--save before.json]
        [--compare before.json] [--keep]

--baseline DIR (a checkout of another version of the collection, e.g. `git worktree add /tmp/base main`) deploys
with that version and with this checkout by turns on the same container (the first deploy with this checkout,
then --redeploys rounds of one baseline redeploy and one redeploy of this checkout), so both see the same load;
the table then shows both per-task medians and the ratio of the wall-time medians. --save writes the figures as
JSON; --compare prints a saved run's per-task medians and totals next to this run's.
Removes its container and temporary files at the end (unless --keep).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from zero_downtime import PREPARE, Container, free_port  # noqa: E402

APP = "api"
DB_PASSWORD = "deploy-profile-bench-0123"  # throwaway container only
MAX_REDEPLOYS = 10
TARGET_SECONDS = 8.0
# profile_tasks' summary line: "<task name> ----...--- 1.23s" (after PLAY RECAP).
PROFILE_LINE = re.compile(r"^(?P<name>.*\S) -+ (?P<seconds>\d+\.\d+)s$")
# Task names that carry the release id or the colour, made comparable across deploys.
NAME_PARTS = [(re.compile(r"p-\d\d"), "<id>"), (re.compile(r"\b(blue|green)\b"), "<colour>")]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min) on {os.cpu_count()} CPUs"


# ---------------------------------------------------------------- releases


def build_release(version: str, outdir: Path, payload_mb: float, sha256_file: bool) -> Path:
    """The sample app's archive (with its top directory) plus payload_mb of random files under vendor/.

    With sha256_file, <archive>.sha256 is written beside it the way scripts/build-sample-release.sh and CI write it
    (deploy.yml then takes that sum instead of hashing the archive on the controller).
    """
    out = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "build-sample-release.sh"), version],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    built = Path(out[0])
    archive = outdir / built.name
    shutil.move(built, archive)
    Path(f"{built}.sha256").unlink(missing_ok=True)
    if payload_mb > 0:
        add_payload(archive, outdir, version, payload_mb)
    if sha256_file:
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        Path(f"{archive}.sha256").write_text(f"{digest}  {archive.name}\n")
    return archive


def add_payload(archive: Path, outdir: Path, version: str, payload_mb: float) -> None:
    top = f"sample-app-{version}"
    unpacked = outdir / f"unpack-{version}"
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    vendor = unpacked / top / "vendor"
    vendor.mkdir()
    file_size = 40 * 1024
    for i in range(max(1, int(payload_mb * 1024 * 1024 / file_size))):
        package = vendor / f"pkg{i // 50:02d}"
        package.mkdir(exist_ok=True)
        (package / f"blob{i % 50:02d}.bin").write_bytes(os.urandom(file_size))
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        tar.add(unpacked / top, arcname=top)
    shutil.rmtree(unpacked)


# ---------------------------------------------------------------- ansible


def write_inventory(workdir: Path, container: str, watch_seconds: float) -> Path:
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
                "api_nginx_listen": "80",
                "api_stop_timeout": 10,
                "worker_instances": 2,
                "deploy_keep_releases": 4,
                # The post-switch watch adds exactly this to every deploy (it waits that long for traffic).
                "deploy_watch_seconds": watch_seconds,
                "bench_db_password": DB_PASSWORD,
            },
            "children": {"api": {"hosts": {"profile-app": {}}}, "worker": {"hosts": {"profile-app": {}}}},
        }
    }
    path = workdir / "inventory.json"
    path.write_text(json.dumps(inventory, indent=2))
    return path


def ansible_env(workdir: Path, collections: str | None = None) -> dict:
    env = dict(os.environ)
    if collections:
        env["ANSIBLE_COLLECTIONS_PATH"] = collections
    env.update(
        ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"),
        ANSIBLE_ROLES_PATH=str(REPO_ROOT / "roles"),
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default",
        ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
        PROFILE_TASKS_SORT_ORDER="none",
        PROFILE_TASKS_TASK_OUTPUT_LIMIT="all",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCAL_TEMP=str(workdir / "ansible-tmp"),
        ANSIBLE_RETRY_FILES_ENABLED="0",
        COLUMNS="160",
    )
    return env


def playbook(workdir: Path, inventory: Path, book: Path, extravars: dict | None = None, timeout: float = 600,
             collections: str | None = None, env_extra: dict | None = None):  # fmt: skip
    argv = ["ansible-playbook", "-i", str(inventory), str(book)]
    if extravars:
        argv += ["-e", json.dumps(extravars)]
    env = ansible_env(workdir, collections)
    env.update(env_extra or {})
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    return proc.returncode, time.monotonic() - started, proc.stdout + proc.stderr


def profile(output: str) -> list[tuple[str, float]]:
    """(task name, seconds) in execution order, from profile_tasks' summary after PLAY RECAP."""
    rows = []
    recap = output.rfind("PLAY RECAP")
    for line in output[recap:].splitlines() if recap >= 0 else []:
        match = PROFILE_LINE.match(line.rstrip())
        if match:
            rows.append((match["name"], float(match["seconds"])))
    return rows


def keyed(rows: list[tuple[str, float]]) -> dict[str, float]:
    """Rows keyed by name, a repeated name numbered (#2, #3) so deploys line up task by task."""
    seen: dict[str, int] = {}
    out = {}
    for raw, seconds in rows:
        name = raw
        for pattern, placeholder in NAME_PARTS:
            name = pattern.sub(placeholder, name)
        seen[name] = seen.get(name, 0) + 1
        out[name if seen[name] == 1 else f"{name} #{seen[name]}"] = seconds
    return out


def failure(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith(("fatal:", "failed:", "ERROR!"))]
    return (lines[0] if lines else output[-600:])[:600]


# ---------------------------------------------------------------- report


def summarise(first: dict | None, redeploys: list[dict]) -> dict:
    """Per-task times of the first deploy and per-task medians of the redeploys, plus the totals."""
    names: list[str] = list(keyed(first["tasks"])) if first else []
    for deploy in redeploys:
        names += [name for name in keyed(deploy["tasks"]) if name not in names]
    medians = {}
    for name in names:
        values = [v for v in (keyed(d["tasks"]).get(name) for d in redeploys) if v is not None]
        if values:
            medians[name] = statistics.median(values)
    deploys = ([first] if first else []) + redeploys
    return {
        "first": keyed(first["tasks"]) if first else {},
        "redeploy_median": medians,
        "names": names,
        "first_wall": first["wall"] if first else None,
        "redeploy_walls": [d["wall"] for d in redeploys],
        "task_sums": [round(sum(s for _n, s in d["tasks"]), 2) for d in deploys],
        "task_counts": [len(d["tasks"]) for d in deploys],
    }


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def print_report(summary: dict, args, loads: tuple[str, str], archive_bytes: int, other: dict | None, label: str):
    print("\n== deploy profile (playbooks/deploy.yml, one host, profile_tasks) ==")
    print(f"release archive          : {archive_bytes / 1e6:.1f} MB (sample app + {args.payload_mb:g} MB payload)")
    print(f"post-switch watch        : deploy_watch_seconds={args.watch_seconds:g} (added to every deploy as it is)")
    source = "hashed on the controller" if args.hash_on_controller else "published beside it (<archive>.sha256)"
    print(f"archive sha256           : {source}")
    print(f"load average before/after: {loads[0]}  /  {loads[1]}")
    print("  (a shared machine: other jobs' load slows every figure; compare figures taken side by side)")
    header = f"{'task':<76} {'first':>6} {'redeploy':>8}"
    if other:
        header += f" {label:>8}"
    print(header)
    names = summary["names"] + [n for n in (other or {}).get("names", []) if n not in summary["names"]]
    for name in names:
        line = f"{name[:76]:<76} {_fmt(summary['first'].get(name)):>6} {_fmt(summary['redeploy_median'].get(name)):>8}"
        if other:
            line += f" {_fmt(other['redeploy_median'].get(name)):>8}"
        print(line)
    walls = summary["redeploy_walls"]
    print(f"tasks per deploy         : {summary['task_counts']}")
    print(f"sum of task times        : {', '.join(f'{s:.2f}s' for s in summary['task_sums'])}")
    print(f"playbook wall time       : first {_fmt(summary['first_wall'])}s, redeploys "
          f"{', '.join(f'{w:.2f}s' for w in walls)}")  # fmt: skip
    median = _median(walls)
    if median is not None:
        verdict = "within" if median <= TARGET_SECONDS else "over"
        print(f"redeploy wall time median: {median:.2f}s ({verdict} the {TARGET_SECONDS:g} s target on this machine)")
    if other:
        other_median = _median(other["redeploy_walls"])
        print(f"{label} redeploys        : {', '.join(f'{w:.2f}s' for w in other['redeploy_walls'])}; "
              f"median {_fmt(other_median)}s; tasks per deploy {other['task_counts']}")  # fmt: skip
        if median and other_median:
            print(f"redeploy median ratio    : {median / other_median:.2f} (this checkout / {label})")


# ---------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redeploys", type=int, default=3, help=f"deploys after the first, 1..{MAX_REDEPLOYS}")
    parser.add_argument("--payload-mb", type=float, default=8.0, help="random files added to each release (MB)")
    parser.add_argument("--baseline", type=Path, help="a checkout of another version: deploy with it by turns")
    parser.add_argument("--save", type=Path, help="write the figures as JSON")
    parser.add_argument("--compare", type=Path, help="a JSON file written by --save: print it next to this run")
    parser.add_argument(
        "--mitogen",
        action="store_true",
        help="deploy by turns with Mitogen's mitogen_linear strategy (pip install mitogen), shown as the baseline",
    )
    parser.add_argument(
        "--hash-on-controller",
        action="store_true",
        help="publish no <archive>.sha256: deploy.yml hashes the archive on the controller (one more module call)",
    )
    parser.add_argument(
        "--watch-seconds",
        type=float,
        default=0,
        help="deploy_watch_seconds (default 0: the deploy's own work; the watch adds this much to every deploy)",
    )
    parser.add_argument("--keep", action="store_true", help="leave the container running (debugging)")
    args = parser.parse_args()
    if not 1 <= args.redeploys <= MAX_REDEPLOYS:
        parser.error(f"--redeploys must be 1..{MAX_REDEPLOYS}")
    if not 0 <= args.watch_seconds <= 600:
        parser.error("--watch-seconds must be 0..600")
    if not 0 <= args.payload_mb <= 64:
        parser.error("--payload-mb must be 0..64")
    if not os.environ.get("ANSIBLE_COLLECTIONS_PATH"):
        parser.error("run inside the project environment: . scripts/env.sh")
    if args.baseline and not (args.baseline / "playbooks" / "deploy.yml").is_file():
        parser.error(f"--baseline {args.baseline}: no playbooks/deploy.yml there")
    if sum(bool(x) for x in (args.baseline, args.compare, args.mitogen)) > 1:
        parser.error("--baseline, --compare and --mitogen each name what to compare with: give one")
    if args.baseline and args.compare:
        parser.error("--baseline and --compare both name what to compare with: give one")

    state_dir = Path(os.environ.get("STACKOPS_STATE", Path.home() / ".cache/stackops-platform/state"))
    image = (state_dir / "base-image").read_text().strip()
    workdir = Path(tempfile.mkdtemp(prefix="deploy-profile-"))
    (workdir / "ansible-tmp").mkdir()
    container = Container(image, f"deploy-profile-{os.getpid()}", free_port())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return bench(args, workdir, container)
    finally:
        if args.keep:
            log(f"kept container {container.name} (docker rm -f {container.name}) and {workdir}")
        else:
            container.remove()
            shutil.rmtree(workdir, ignore_errors=True)


def baseline_collections(workdir: Path, checkout: Path) -> str:
    """A collections path whose stackops.platform is the baseline checkout."""
    coll = workdir / "baseline-collections"
    (coll / "ansible_collections" / "stackops").mkdir(parents=True)
    (coll / "ansible_collections" / "stackops" / "platform").symlink_to(checkout.resolve())
    return str(coll)


def mitogen_variant() -> tuple:
    """This checkout under Mitogen's strategy (it only takes over connections named by their short name: docker)."""
    import ansible_mitogen  # noqa: PLC0415 - optional: pip install mitogen

    plugins = Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"
    env = {"ANSIBLE_STRATEGY_PLUGINS": str(plugins), "ANSIBLE_STRATEGY": "mitogen_linear"}
    return ("mitogen", REPO_ROOT, None, env, {"ansible_connection": "docker"})


def bench(args, workdir: Path, container: Container) -> int:
    # The variants deployed, in turn: (label, playbook root, collections path, environment, extra vars).
    variants = [("this", REPO_ROOT, None, {}, {})]
    if args.baseline:
        coll = baseline_collections(workdir, args.baseline)
        variants.insert(0, ("baseline", args.baseline.resolve(), coll, {}, {}))
    elif args.mitogen:
        variants.insert(0, mitogen_variant())
    count = 1 + args.redeploys * len(variants)
    log(f"building {count} releases ({args.payload_mb:g} MB payload each)")
    versions = [f"9.1.{i}" for i in range(count)]
    archives = [build_release(v, workdir, args.payload_mb, not args.hash_on_controller) for v in versions]
    log(f"starting container {container.name}")
    container.start()
    inventory = write_inventory(workdir, container.name, args.watch_seconds)
    prepare = workdir / "prepare.yml"
    prepare.write_text(PREPARE)
    rc, wall, output = playbook(workdir, inventory, prepare, timeout=900)
    if rc:
        log(f"provisioning failed: {failure(output)}")
        return 1
    log(f"provisioned in {wall:.0f}s")

    load_before = load_average()
    runs: dict[str, list[dict]] = {variant[0]: [] for variant in variants}
    plan = [variants[-1]] + [v for _round in range(args.redeploys) for v in variants]
    for i, ((label, root, coll, env_extra, vars_extra), archive) in enumerate(zip(plan, archives, strict=True)):
        extravars = {"release_archive": str(archive), "release_id": f"p-{i:02d}", **vars_extra}
        book = root / "playbooks" / "deploy.yml"
        rc, wall, output = playbook(workdir, inventory, book, extravars, collections=coll, env_extra=env_extra)
        if rc:
            log(f"deploy {i} ({label}) failed: {failure(output)}")
            return 1
        served = container.exec("readlink", f"/srv/{APP}/current")
        if not served.endswith(f"/p-{i:02d}"):
            log(f"deploy {i} ({label}): current is {served!r}, expected release p-{i:02d}")
            return 1
        rows = profile(output)
        log(f"deploy {i} ({label}, {versions[i]}): {wall:.2f}s wall, {len(rows)} tasks, load {os.getloadavg()[0]:.2f}")
        runs[label].append({"version": versions[i], "wall": wall, "tasks": rows})
    loads = (load_before, load_average())
    this = summarise(runs["this"][0], runs["this"][1:])
    this["load"] = list(loads)
    other, label = None, "before"
    if args.baseline or args.mitogen:
        label = "baseline" if args.baseline else "mitogen"
        other = summarise(None, runs[label])
    elif args.compare:
        saved = json.loads(args.compare.read_text())
        other = saved.get("this", saved)
    print_report(this, args, loads, archives[0].stat().st_size, other, label)
    if args.save:
        args.save.write_text(json.dumps({"this": this, "baseline": other if args.baseline else None}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
