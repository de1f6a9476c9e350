"""After failover.yml: the promoted replica takes writes; replication access stays scram, by address."""

testinfra_hosts = ["ansible://replica-standby"]

APP = "molecule-app-password-0123"
REPLICATION = "molecule-replication-0123"
PASSFILE = "/var/lib/postgresql/.stackops-replication.pgpass"


def admin_sql(host, sql):
    return host.run("runuser -u postgres -- psql -XAtq -d postgres -c %s", sql)


def test_promoted_and_takes_writes(host):
    assert admin_sql(host, "SELECT pg_is_in_recovery()").stdout.strip() == "f"
    res = host.run(
        "env PGPASSWORD=%s psql -XAtq -h 172.30.61.12 -U app -d app -c %s",
        APP,
        "INSERT INTO failover_probe (id) VALUES (-2) ON CONFLICT DO NOTHING RETURNING 'written'",
    )
    assert res.rc == 0, res.stderr


def test_rows_written_before_the_failover_are_there(host):
    count = host.run(
        "runuser -u postgres -- psql -XAtq -d app -c %s",
        "SELECT count(*) FROM failover_probe WHERE id > 0",
    )
    assert int(count.stdout.strip()) > 0


def test_replication_login_is_scram_and_replication_only(host):
    row = admin_sql(
        host,
        "SELECT rolreplication, rolsuper, left(rolpassword, 14) FROM pg_authid WHERE rolname = 'replicator'",
    ).stdout.strip()
    assert row == "t|f|SCRAM-SHA-256$", row


def test_hba_admits_replication_only_from_the_other_member(host):
    rules = admin_sql(
        host,
        "SELECT address || '/' || netmask || ' ' || auth_method FROM pg_hba_file_rules"
        " WHERE 'replication' = ANY(database)",
    ).stdout.strip().split("\n")
    assert rules == ["172.30.61.11/255.255.255.255 scram-sha-256"], rules


def test_passfile_is_private_and_the_password_is_nowhere_else(host):
    passfile = host.file(PASSFILE)
    assert passfile.user == "postgres" and passfile.mode == 0o600
    assert REPLICATION in passfile.content_string
    # The bracket keeps grep's own command line from matching.
    pattern = REPLICATION[:-1] + "[" + REPLICATION[-1] + "]"
    leaks = host.run(
        "grep -rl -- %s /etc/postgresql /var/lib/postgresql/15/main/postgresql.auto.conf /proc/[0-9]*/cmdline",
        pattern,
    )
    assert leaks.stdout.strip() == "", leaks.stdout
