"""deploy.yml's pre-deploy backup (deploy_backup_database) works from what the inventory already says.

Runs deploy.yml against inventories of local-connection hosts and the throwaway cluster; the api hosts are
left out (no api group, or --limit), so the run is the release check plus the backup play. The cluster's
socket directory stands in for the role's /var/run/postgresql (_postgres_socket_dir as an extra var).
"""

from __future__ import annotations

import hashlib
import json
import sys
import tarfile
from pathlib import Path

import pytest
from pg_helpers import TEST_PASSWORD, TEST_USER, qi

REPO_ROOT = Path(__file__).resolve().parents[3]
DEPLOY = str(REPO_ROOT / "playbooks" / "deploy.yml")
SOCKET_TASK = "Back up the database with the nightly timer's settings"
TCP_TASK = "Back up the database from deploy_backup_host"


def host_line(name: str, **hostvars) -> str:
    # ansible_become_user=root: the test venv's interpreter is not readable by the postgres OS user.
    base = f"{name} ansible_connection=local ansible_python_interpreter={sys.executable} ansible_become_user=root"
    return " ".join([base, *(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in hostvars.items())])


@pytest.fixture
def archive(tmp_path):
    src = tmp_path / "sample-app-9.9.9"
    src.mkdir()
    (src / "VERSION").write_text("9.9.9\n")
    path = tmp_path / "sample-app-9.9.9.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(src, arcname=src.name)
    return str(path)


@pytest.fixture
def database(pg_cluster, request):
    name = "deploy_bk_" + request.node.name.split("[")[0][-20:].lower().replace("-", "_")
    pg_cluster.psql(f"DROP DATABASE IF EXISTS {qi(name)};", superuser=True)
    pg_cluster.psql(f"CREATE DATABASE {qi(name)} OWNER {qi(TEST_USER)};", superuser=True)
    pg_cluster.psql("CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'a'), (2, 'b');",
                    db=name)
    yield name
    pg_cluster.psql(f"DROP DATABASE IF EXISTS {qi(name)};", superuser=True)


def extravars(pg_cluster, archive, database, **more):
    return {"release_archive": archive, "deploy_backup_database": database,
            "_postgres_socket_dir": pg_cluster.socket_dir, **more}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def backups(directory: Path, database: str) -> list[Path]:
    return sorted((directory / database).glob(f"{database}_*.dump")) if (directory / database).exists() else []


def test_backs_up_on_the_only_postgres_host_into_the_role_directory(playbook, pg_cluster, archive, database, tmp_path):
    backup_dir = tmp_path / "pg-backups"  # missing: the play creates it like the role does
    inventory = "[postgres]\n" + host_line("db-1", postgres_port=pg_cluster.port, postgres_backup_dir=str(backup_dir))
    run = playbook(DEPLOY, inventory=inventory, extravars=extravars(pg_cluster, archive, database))
    assert run.failed("db-1") == 0, run.results
    [dump] = backups(backup_dir, database)
    result = run.task(SOCKET_TASK)
    assert result["path"] == str(dump) and result["sha256"] == sha256(dump)
    args = result["invocation"]["module_args"]
    assert args["host"] == pg_cluster.socket_dir and args["user"] == "postgres" and args["password"] is None
    # The role's retention, not a deploy-only one: the nightly timer and the deploy share one directory.
    assert (args["keep_last"], args["keep_days"]) == (7, 7)
    assert backup_dir.stat().st_mode & 0o777 == 0o700
    assert backup_dir.owner() == "postgres"
    manifest = json.loads(Path(str(dump) + ".manifest.json").read_text())
    assert manifest["sha256"] == sha256(dump)
    printed = run.task("Show the pre-deploy backup")["msg"]
    assert f"{dump} sha256={sha256(dump)}" in printed and "on db-1" in printed


def test_follows_the_database_url_to_its_postgres_host(playbook, pg_cluster, archive, database, tmp_path):
    dirs = {name: tmp_path / name for name in ("db-a", "db-b")}
    lines = [
        host_line(name, postgres_port=pg_cluster.port, postgres_backup_dir=str(path),
                  stackops_private_address=f"10.9.9.{i}")
        for i, (name, path) in enumerate(dirs.items(), start=1)
    ]
    api_env = {"DATABASE_URL": f"postgresql://app:{TEST_PASSWORD}@10.9.9.2:5432/app", "REDIS_URL": "redis://x"}
    inventory = "[postgres]\n" + "\n".join(lines) + "\n[api]\n" + host_line("app-1") + "\n"
    run = playbook(
        DEPLOY,
        inventory=inventory,
        extravars=extravars(pg_cluster, archive, database, api_env=api_env),
        limit="localhost,db-a,db-b",
    )
    assert run.failed("db-b") == 0, run.results
    assert len(backups(dirs["db-b"], database)) == 1
    assert not dirs["db-a"].exists()
    assert TEST_PASSWORD not in json.dumps(run.results)


def test_ambiguous_postgres_host_is_refused_before_anything_changes(playbook, pg_cluster, archive, database, tmp_path):
    lines = [host_line(n, postgres_port=pg_cluster.port, postgres_backup_dir=str(tmp_path / n))
             for n in ("db-a", "db-b")]
    run = playbook(DEPLOY, inventory="[postgres]\n" + "\n".join(lines) + "\n",
                   extravars=extravars(pg_cluster, archive, database))
    assert run.failed("db-a") == 1
    msg = run.task("Require a postgres host to back up on")["msg"]
    assert "matches no host of the postgres group (db-a, db-b)" in msg and "deploy_backup_delegate_to" in msg, msg
    assert not (tmp_path / "db-a").exists() and not (tmp_path / "db-b").exists()
    # deploy_backup_delegate_to settles it.
    run = playbook(DEPLOY, inventory="[postgres]\n" + "\n".join(lines) + "\n",
                   extravars=extravars(pg_cluster, archive, database, deploy_backup_delegate_to="db-a"))
    assert run.failed("db-a") == 0, run.results
    assert len(backups(tmp_path / "db-a", database)) == 1 and not (tmp_path / "db-b").exists()


def test_backup_host_left_out_by_limit_is_refused(playbook, pg_cluster, archive, database, tmp_path):
    inventory = ("[postgres]\n" + host_line("db-1", postgres_backup_dir=str(tmp_path / "b")) + "\n[api]\n"
                 + host_line("app-1", api_env={}) + "\n")
    run = playbook(DEPLOY, inventory=inventory, extravars=extravars(pg_cluster, archive, database),
                   limit="localhost,app-1")
    assert run.failed("app-1") == 1
    assert "--limit leaves out" in run.task("Require the backup host in this run (--limit)")["msg"]
    assert "Check api_env is a dict holding the required keys" not in [e["task"] for e in run.results]


def test_user_or_password_without_backup_host_is_refused(playbook, pg_cluster, archive, database, tmp_path):
    inventory = "[postgres]\n" + host_line("db-1", postgres_backup_dir=str(tmp_path / "b")) + "\n"
    run = playbook(DEPLOY, inventory=inventory,
                   extravars=extravars(pg_cluster, archive, database, deploy_backup_password=TEST_PASSWORD))
    assert run.failed("db-1") == 1
    msg = run.task("Refuse deploy_backup_port, _user or _password without deploy_backup_host")["msg"]
    assert msg.startswith("deploy_backup_password only apply with deploy_backup_host"), msg
    assert TEST_PASSWORD not in json.dumps(run.results)
    assert not (tmp_path / "b").exists()


def test_check_mode_plans_and_changes_nothing(playbook, pg_cluster, archive, database, tmp_path):
    backup_dir = tmp_path / "pg-backups"
    backup_dir.mkdir()
    inventory = "[postgres]\n" + host_line("db-1", postgres_port=pg_cluster.port, postgres_backup_dir=str(backup_dir))
    run = playbook(DEPLOY, inventory=inventory, extravars=extravars(pg_cluster, archive, database), check=True)
    assert run.failed("db-1") == 0, run.results
    assert run.task(SOCKET_TASK)["path"].startswith(f"{backup_dir}/{database}/{database}_")
    assert list(backup_dir.iterdir()) == []


def test_backup_host_override_over_tcp(playbook, pg_cluster, archive, database, tmp_path):
    # The database is outside the inventory: backed up from the first api host over TCP with a password.
    backup_dir = tmp_path / "deploy-backups"
    inventory = "[api]\n" + host_line("app-1", api_env={}) + "\n"
    run = playbook(
        DEPLOY,
        inventory=inventory,
        extravars=extravars(pg_cluster, archive, database, deploy_backup_host="127.0.0.1",
                            deploy_backup_port=pg_cluster.port, deploy_backup_user=TEST_USER,
                            deploy_backup_password=TEST_PASSWORD, deploy_backup_dir=str(backup_dir)),
    )
    [dump] = backups(backup_dir, database)
    assert run.task(TCP_TASK)["sha256"] == sha256(dump)
    assert backup_dir.stat().st_mode & 0o777 == 0o700
    assert TEST_PASSWORD not in json.dumps(run.results)
    # The deploy then goes on to this api host, which has no app: the api role's checks stop it there.
    assert run.task_status("Check api_env is a dict holding the required keys") == "runner_on_failed"
