"""playbooks/backup.yml and restore.yml against the converged instance: the data comes back, the
production gate holds, and the restored database keeps the role's least-privilege grants.

Runs after test_postgres.py (file order): it replaces the app database.
"""

from conftest import APP, admin_sql, play


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
