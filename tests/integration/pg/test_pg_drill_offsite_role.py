"""Restore drills of the off-site copy as the postgres role sets them up (postgres_drill_source=offsite).

The role's own task files (preflight.yml, backup_offsite.yml, drill_settings.yml) run against this machine with
their paths moved into a scratch directory; then the drill program, installed like the role installs it, runs as
the postgres OS user with the settings file the role wrote, as the drill unit does, against moto's S3 server and
the throwaway PostgreSQL cluster. The local backups are deleted first: only the bucket's copy can pass the drill.
"""

from __future__ import annotations

import configparser
import grp
import json
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from pg_helpers import PG_BIN, failure_message, install_like_the_role, module_play
from s3_helpers import ACCESS_KEY, SECRET_KEY, age_key

REPO_ROOT = Path(__file__).resolve().parents[3]
PACKAGE = "ansible_collections.stackops.platform.plugins.module_utils"
UNIT_TEMPLATE = REPO_ROOT / "roles" / "postgres" / "templates" / "stackops-pg-drill@.service.j2"


@pytest.fixture
def scratch_root():
    """A directory the postgres OS user can enter (pytest's tmp_path is root's, 0700)."""
    root = Path(tempfile.mkdtemp(prefix="stackops-drill-role-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def role_play(role_vars: dict, unit_dest: Path) -> list[dict]:
    """The role's preflight, off-site and drill settings tasks, then the drill unit rendered to ``unit_dest``."""
    def role(tasks_from, **extra):
        return {"name": f"Role tasks {tasks_from}",
                "ansible.builtin.include_role": {"name": "stackops.platform.postgres", "tasks_from": tasks_from,
                                                 **extra}}
    return [{
        "name": "postgres drill settings",
        "hosts": "localhost",
        "gather_facts": False,
        "vars": role_vars,
        "tasks": [
            role("preflight.yml"),
            role("backup_offsite.yml"),
            role("drill_settings.yml", public=True),
            {"name": "Render the drill unit",
             "ansible.builtin.template": {"src": str(UNIT_TEMPLATE), "dest": str(unit_dest), "mode": "0644"}},
        ],
    }]


def run_as_postgres(argv: list[str], lib: Path) -> subprocess.CompletedProcess:
    """As the drill unit runs it: User=postgres, /usr/bin/python3, PYTHONPATH the installed package."""
    env = ["env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin", f"PYTHONPATH={lib}", "PYTHONDONTWRITEBYTECODE=1"]
    return subprocess.run(["runuser", "-u", "postgres", "--", *env, *argv], cwd=lib, capture_output=True,
                          text=True, check=False)


def owner(path: Path) -> tuple[str, str, int]:
    st = path.stat()
    return pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, st.st_mode & 0o777


def test_role_sets_up_drills_of_the_remote_copy_and_the_drill_restores_it(
    playbook, pg_cluster, bench_db, bucket, scratch_root, tmp_path
):
    key = age_key(tmp_path)
    etc, backups, metrics = scratch_root / "etc", scratch_root / "backups", scratch_root / "metrics"
    etc.mkdir()
    backups.mkdir(mode=0o700)
    shutil.chown(backups, "postgres", "postgres")
    offsite = bucket.options(recipients=[key.recipient])  # prefix "ci", like the role variables below
    made = playbook(module_play("pg_backup", {"database": bench_db, "backup_dir": str(backups), **pg_cluster.conn(),
                                              "offsite": offsite}, name="backup"))
    assert made.failed() == 0, failure_message(made)
    backup = made.task("backup")
    counts = json.loads(Path(backup["manifest_path"]).read_text())["row_counts"]
    # The drill has only the bucket to go on: its database folder is back empty, owned as the backup unit leaves it.
    shutil.rmtree(backups / bench_db)
    (backups / bench_db).mkdir(mode=0o700)
    shutil.chown(backups / bench_db, "postgres", "postgres")

    role_vars = {
        "postgres_databases": [{"name": bench_db}],
        "postgres_port": pg_cluster.port,
        "postgres_backup_dir": str(backups),
        "postgres_backup_metrics_dir": str(metrics),
        "postgres_backup_offsite_enabled": True,
        "postgres_backup_offsite_endpoint": bucket.url,
        "postgres_backup_offsite_bucket": bucket.bucket,
        "postgres_backup_offsite_prefix": "ci",
        "postgres_backup_offsite_access_key": ACCESS_KEY,
        "postgres_backup_offsite_secret_key": SECRET_KEY,
        "postgres_backup_offsite_recipients": [key.recipient],
        "postgres_drill_source": "offsite",
        "postgres_drill_offsite_identity": key.identity,
    }
    # The role's fixed paths, moved into the scratch directory (extra vars outrank the role's vars/main.yml).
    paths = {"_postgres_backup_conf_dir": str(etc), "_postgres_backup_offsite_credentials": str(etc / "creds.json"),
             "_postgres_socket_dir": pg_cluster.socket_dir, "_postgres_bin_dir": str(PG_BIN)}
    unit = scratch_root / "stackops-pg-drill@.service"
    run = playbook(role_play(role_vars, unit), extravars=paths)
    assert run.failed() == 0, failure_message(run)
    assert key.identity.split("AGE-SECRET-KEY-")[1][:20] not in json.dumps(run.results)  # no_log

    identity = etc / "pg_drill-offsite-identity.txt"
    downloads = backups / ".drill-downloads"
    assert identity.read_text() == key.identity.strip() + "\n"
    assert owner(identity) == ("root", "postgres", 0o640)
    assert owner(downloads) == ("postgres", "postgres", 0o700)
    settings = json.loads((etc / f"pg_drill-{bench_db}.json").read_text())
    copies = json.loads((etc / f"pg_offsite-{bench_db}.json").read_text())
    # The backup unit's off-site settings, the same dict, plus the drill identity.
    assert settings["offsite"] == {
        **{k: v for k, v in copies.items() if k not in ("database", "backup_dir")}, "identity_file": str(identity)
    }
    assert settings["download_dir"] == str(downloads) and settings["backup_dir"] == str(backups)
    assert [copies[k] for k in ("bucket", "prefix", "keep_last", "keep_daily")] == [bucket.bucket, "ci", 3, 7]

    # The unit's sandbox: the download directory is inside its only writable path; it waits for the network.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(unit.read_text())
    writable = parser["Service"]["ReadWritePaths"].split()
    assert parser["Service"]["ProtectSystem"] == "strict"
    assert any(downloads.is_relative_to(path) for path in writable), writable
    assert "network-online.target" in parser["Unit"]["After"]

    before = pg_cluster.databases()
    config = etc / f"pg_drill-{bench_db}.json"
    drill = run_as_postgres(["/usr/bin/python3", "-m", f"{PACKAGE}.pg_drill_core", "--config", str(config)],
                            install_like_the_role(scratch_root / "lib"))
    assert drill.returncode == 0, drill.stderr
    result = json.loads(drill.stdout)
    assert result["source"] == "offsite"
    assert result["origin"] == f"offsite:{bucket.bucket}/ci/{bench_db}/{backup['name']}"
    assert result["rows_compared"] == sum(counts.values()) > 0 and result["scratch_dropped"] is True
    assert pg_cluster.databases() == before and list(downloads.iterdir()) == []
    assert list((backups / bench_db).iterdir()) == [backups / bench_db / ".drill-state.json"]

    # ExecStopPost, as root: the metrics say the off-site copy was drilled and passed.
    lib = scratch_root / "lib"
    stop = subprocess.run(["/usr/bin/python3", "-m", f"{PACKAGE}.pg_drill_core", "--config", str(config),
                           "--write-metrics", str(metrics), "--run-result", "success"],
                          cwd=lib, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(lib)},
                          capture_output=True, text=True, check=False)
    assert stop.returncode == 0, stop.stderr
    text = (metrics / f"stackops_pg_drill_{bench_db}.prom").read_text()
    labels = f'{{database="{bench_db}",source="offsite"}}'
    assert f"stackops_pg_drill_last_run_success{labels} 1\n" in text
    assert f"stackops_pg_drill_last_rows_compared{labels} {sum(counts.values())}\n" in text
    assert f"stackops_pg_drill_last_success_timestamp_seconds{labels} " in text
    state = json.loads((backups / bench_db / ".drill-state.json").read_text())
    assert state["last_success"]["origin"] == result["origin"] and state["last_run"]["source"] == "offsite"

    # playbooks/restore_drill.yml --check verifies the bucket's newest copy and reports where it comes from.
    # The check runs as the postgres OS user, as on the host: the system's python3 (the test venv's is not readable
    # by postgres) and su (no sudo here; root needs no password).
    host = "pg-drill-offsite"
    inventory = (f"[postgres]\n{host} ansible_connection=local ansible_python_interpreter=/usr/bin/python3 "
                 "ansible_become_method=su\n")
    checked = playbook(str(REPO_ROOT / "playbooks" / "restore_drill.yml"), check=True, inventory=inventory,
                       extravars={**paths, "_postgres_backup_lib_dir": str(lib), "database": bench_db})
    assert checked.failed(host) == 0, [e["res"] for e in checked.results if e["event"] == "runner_on_failed"]
    (report,) = checked.task("Report the backup each drill would restore")["results"]
    assert report["msg"].startswith(f"{bench_db}: would restore {result['origin']} (finished "), report["msg"]
    assert pg_cluster.databases() == before and list(downloads.iterdir()) == []

    # Back to local drills: the identity and the download directory go, the settings lose their offsite part.
    run = playbook(role_play({**role_vars, "postgres_drill_source": "local"}, unit), extravars=paths)
    assert run.failed() == 0, failure_message(run)
    assert not identity.exists() and not downloads.exists()
    settings = json.loads(config.read_text())
    assert "offsite" not in settings and "download_dir" not in settings
    assert "network-online.target" not in unit.read_text()
