"""The postgres role refuses unsafe or incomplete input before it changes anything.

Runs the role against localhost in check mode (so a case that wrongly got past the checks still
cannot touch this machine): a role past its checks would report changed tasks (packages, pg_hba.conf),
so failed == 1, changed == 0 and the message prove the refusal came first.
"""

from __future__ import annotations

import pytest

SECRET = "molecule-secret-password-0123"
GOOD_USER = {"name": "app", "password": SECRET, "db": "app"}
GOOD_DB = {"name": "app", "owner": "app"}


def role_play(role_vars):
    return [
        {
            "name": "apply postgres",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Apply the role",
                    "ansible.builtin.include_role": {"name": "stackops.platform.postgres"},
                    "vars": role_vars,
                }
            ],
        }
    ]


def failure_messages(run):
    return " ".join(str(e["res"].get("msg", "")) for e in run.results if e["event"] == "runner_on_failed")


def refused_before_install(playbook, role_vars, named):
    """Run the role in check mode with role_vars over a good user and database: it must fail naming `named`,
    change nothing and stop before the packages. Returns the run."""
    base = {"postgres_users": [GOOD_USER], "postgres_databases": [GOOD_DB]}
    run = playbook(role_play({**base, **role_vars}), check=True)
    assert run.failed() == 1
    assert run.changed() == 0
    assert named in failure_messages(run), failure_messages(run)
    assert "Install PostgreSQL packages" not in [e["task"] for e in run.results]
    return run


def hba(method, **extra):
    return {"type": "host", "database": "app", "user": "app", "address": "10.0.0.0/24", "method": method, **extra}


@pytest.mark.parametrize(
    ("role_vars", "named"),
    [
        ({"postgres_hba_entries": [hba("trust")]}, "#1 host app app 10.0.0.0/24 trust uses trust"),
        ({"postgres_hba_entries": [hba("scram-sha-256"), hba("md5")]}, "#2 host app app 10.0.0.0/24 md5 has"),
        ({"postgres_hba_entries": [hba("password")]}, "has method password"),
        ({"postgres_hba_entries": [hba("scram-sha-256", address="0.0.0.0/0")]}, "opens the server to every address"),
        ({"postgres_users": [{"name": "app", "db": "app"}], "postgres_databases": [GOOD_DB]}, "postgres_users: app"),
        ({"postgres_users": [{"name": "app", "password": "", "db": "app"}]}, "postgres_users: app"),
        ({"postgres_users": [{"name": "app", "password": "short", "db": "app"}]}, "postgres_users: app"),
        ({"postgres_version": 13}, "postgres_version=13"),
        ({"postgres_listen_addresses": ["*"]}, "postgres_listen_addresses"),
        ({"postgres_settings": {"password_encryption": "md5"}}, "password_encryption"),
        ({"postgres_users": [GOOD_USER], "postgres_databases": [{"name": "app", "owner": "nobody"}]}, "app"),
        ({"postgres_users": [GOOD_USER], "postgres_databases": [{"name": "other"}]}, "db app is not in"),
        ({"postgres_backup_format": "tar"}, "postgres_backup_format"),
        ({"postgres_drill_max_disk_share": 0}, "postgres_drill_max_disk_share=0 (above 0, at most 1)"),
        ({"postgres_drill_databases": ["billing"]}, "drill only databases that are backed up: ['app']"),
    ],
    ids=[
        "trust",
        "md5",
        "password",
        "open-to-world",
        "no-password",
        "empty-password",
        "short-password",
        "bad-version",
        "listen-star",
        "md5-setting",
        "unknown-owner",
        "unmanaged-db",
        "bad-backup-format",
        "drill-disk-share-zero",
        "drill-unbacked-db",
    ],
)
def test_bad_input_refused_and_nothing_changed(playbook, role_vars, named):
    refused_before_install(playbook, role_vars, named)


def test_password_not_echoed_on_refusal(playbook):
    run = playbook(
        role_play(
            {
                "postgres_users": [{"name": "app", "password": SECRET, "db": "app"}, {"name": "other"}],
                "postgres_databases": [GOOD_DB],
            }
        ),
        check=True,
    )
    assert run.failed() == 1
    assert "postgres_users: other" in failure_messages(run)
    assert all(SECRET not in str(e["res"]) for e in run.results)
