"""The postgres role refuses bad GFS counts and incomplete off-site settings before it changes anything.

Same method as test_postgres_role_preflight: check mode against localhost, failed == 1, changed == 0,
and the message names the variable.
"""

from __future__ import annotations

import pytest
from test_postgres_role_preflight import refused_before_install

S3_SECRET = "STANDIN-s3-secret-never-echoed"
RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
OFFSITE = {
    "postgres_backup_offsite_enabled": True,
    "postgres_backup_offsite_endpoint": "https://s3.example.test",
    "postgres_backup_offsite_bucket": "backups",
    "postgres_backup_offsite_access_key": "STANDINACCESSKEY",
    "postgres_backup_offsite_secret_key": S3_SECRET,
    "postgres_backup_offsite_recipients": [RECIPIENT],
}
ALL_ZERO = {f"postgres_backup_offsite_keep_{r}": 0 for r in ("last", "days", "daily", "weekly", "monthly")}


@pytest.mark.parametrize(
    ("role_vars", "named"),
    [
        ({"postgres_backup_keep_daily": -1}, "postgres_backup_keep_daily=-1"),
        ({**OFFSITE, "postgres_backup_offsite_endpoint": "s3.example.test"}, "got 's3.example.test'"),
        ({**OFFSITE, "postgres_backup_offsite_bucket": ""}, "postgres_backup_offsite_bucket (got '')"),
        ({**OFFSITE, "postgres_backup_offsite_secret_key": ""}, "postgres_backup_offsite_secret_key (vault them)"),
        ({**OFFSITE, "postgres_backup_offsite_recipients": []}, "age public keys age1..., got 0"),
        (
            {**OFFSITE, "postgres_backup_offsite_recipients": ["AGE-SECRET-KEY-1QQQ"]},
            "postgres_backup_offsite_recipients",
        ),
        ({**OFFSITE, **ALL_ZERO}, "not all 0 (got 0, 0, 0, 0, 0)"),
        ({**OFFSITE, "postgres_backup_offsite_keep_daily": -2}, "got 3, 0, -2, 4, 12"),
    ],
    ids=["gfs-negative", "endpoint", "bucket", "secret", "no-recipient", "secret-as-recipient",
         "offsite-all-zero", "offsite-negative"],
)
def test_bad_retention_or_offsite_input_refused_and_nothing_changed(playbook, role_vars, named):
    run = refused_before_install(playbook, role_vars, named)
    assert all(S3_SECRET not in str(e["res"]) for e in run.results)


IDENTITY = "AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQS9STANDIN"


@pytest.mark.parametrize(
    ("role_vars", "named"),
    [
        (
            {**OFFSITE, "postgres_drill_source": "offsite"},
            "postgres_drill_source=offsite needs postgres_drill_offsite_identity, the age identity (AGE-SECRET-KEY-1",
        ),
        ({**OFFSITE, "postgres_drill_source": "offsite", "postgres_drill_offsite_identity": "  "}, "(it is empty)"),
        (
            {**OFFSITE, "postgres_drill_source": "offsite", "postgres_drill_offsite_identity": RECIPIENT},
            "from your vault (the value given is not one)",
        ),
        (
            {"postgres_drill_source": "offsite", "postgres_drill_offsite_identity": IDENTITY},
            "postgres_drill_source=offsite drills the encrypted off-site copies, but "
            "postgres_backup_offsite_enabled is "
            "false",
        ),
        ({"postgres_drill_source": "remote"}, "postgres_drill_source"),
    ],
    ids=["drill-offsite-no-identity", "drill-offsite-blank-identity", "drill-offsite-public-key",
         "drill-offsite-copies-off", "drill-source-unknown"],
)
def test_bad_offsite_drill_input_refused_and_nothing_changed(playbook, role_vars, named):
    run = refused_before_install(playbook, role_vars, named)
    assert all(IDENTITY[15:40] not in str(e["res"]) and S3_SECRET not in str(e["res"]) for e in run.results)
