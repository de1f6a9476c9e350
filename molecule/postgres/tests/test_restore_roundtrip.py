"""playbooks/backup.yml and restore.yml against the converged instance: the data comes back, the
production gate holds, and the restored database keeps the role's least-privilege grants.

Runs after test_postgres.py (file order): it replaces the app database.
"""

import os
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
INSTANCE = "postgres-instance"
APP = "molecule-app-password-0123"


def admin_sql(host, sql, db="app"):
    return host.run("runuser -u postgres -- psql -XAtq -d %s -c %s", db, sql)


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    path = tmp_path_factory.mktemp("inv") / "hosts.yml"
    group_vars = {
        # Production on purpose: the restore must be confirmed.
        "stackops_environment": "production",
        "postgres_users": [
            {"name": "app", "password": APP, "db": "app"},
            {"name": "billing", "password": "molecule-billing-password-0123", "db": "billing"},
        ],
        "postgres_databases": [{"name": "app", "owner": "app"}, {"name": "billing", "owner": "billing"}],
    }
    hosts = {
        INSTANCE: {"ansible_connection": "community.docker.docker", "ansible_python_interpreter": "/usr/bin/python3"}
    }
    path.write_text(yaml.safe_dump({"all": {"children": {"postgres": {"hosts": hosts, "vars": group_vars}}}}))
    return path


def play(inventory, name, *extra):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    argv = ["ansible-playbook", "-i", str(inventory), str(REPO / "playbooks" / name)]
    for item in extra:
        argv += ["-e", item]
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=False)


def test_backup_then_restore(host, inventory):
    admin_sql(host, "DROP TABLE IF EXISTS roundtrip; CREATE TABLE roundtrip (id int)")
    admin_sql(host, "INSERT INTO roundtrip VALUES (1), (2); ALTER TABLE roundtrip OWNER TO app")
    backup = play(inventory, "backup.yml", "database=app")
    assert backup.returncode == 0, backup.stdout + backup.stderr
    assert "sha256=" in backup.stdout
    admin_sql(host, "INSERT INTO roundtrip VALUES (3)")

    refused = play(inventory, "restore.yml", "database=app")
    assert refused.returncode != 0
    assert "Refusing to restore database app" in refused.stdout + refused.stderr
    assert admin_sql(host, "SELECT count(*) FROM roundtrip").stdout.strip() == "3"

    restored = play(inventory, "restore.yml", "database=app", "confirm_restore=app")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert admin_sql(host, "SELECT count(*) FROM roundtrip").stdout.strip() == "2"

    # The previous database is kept, and the restored one is as locked down as the role left it.
    kept = admin_sql(host, "SELECT datname FROM pg_database WHERE datname LIKE 'app_pre_restore_%'", db="postgres")
    assert kept.stdout.strip(), kept.stdout
    public_cannot_connect = admin_sql(
        host,
        "SELECT datacl IS NOT NULL AND NOT EXISTS (SELECT 1 FROM aclexplode(datacl) a"
        " WHERE a.grantee = 0 AND a.privilege_type = 'CONNECT') FROM pg_database WHERE datname = 'app'",
        db="postgres",
    )
    assert public_cannot_connect.stdout.strip() == "t", public_cannot_connect.stdout + public_cannot_connect.stderr
    out = host.run(
        "env PGPASSWORD=%s psql -XAtq -h 127.0.0.1 -U app -d app -c %s", APP, "SELECT count(*) FROM roundtrip"
    )
    assert out.rc == 0 and out.stdout.strip() == "2", out.stderr
    other = host.run("env PGPASSWORD=%s psql -XAtq -h 127.0.0.1 -U app -d billing -c %s", APP, "SELECT 1")
    assert 'permission denied for database "billing"' in other.stderr
