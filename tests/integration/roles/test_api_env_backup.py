"""The api role backs up shared/.env to .env.bak.<timestamp> before changing it and keeps the newest N.

Runs the role's env_file.yml (what configure.yml imports) on the controller against a deploy root in tmp, as
root (api_user=root), so the backups' owner and mode are real.
"""

from __future__ import annotations

import os
import re

ENV_A = {"DATABASE_URL": "postgresql://a@127.0.0.1/a", "REDIS_URL": "redis://127.0.0.1:6379/0"}


def play(root, env, keep=2):
    return [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {
                "api_deploy_root": str(root),
                "api_user": "root",
                "api_group": "root",
                "api_env": env,
                "api_env_backup_keep": keep,
            },
            "tasks": [
                {
                    "name": "Write the env file",
                    "ansible.builtin.include_role": {"name": "stackops.platform.api", "tasks_from": "env_file.yml"},
                }
            ],
        }
    ]


def backups(root):
    shared = root / "shared"
    return sorted(p for p in shared.iterdir() if p.name.startswith(".env.bak."))


def env(n):
    return dict(ENV_A, DATABASE_URL=f"postgresql://v{n}@127.0.0.1/app")


def test_env_backups_are_made_on_change_only_and_rotated(tmp_path, playbook):
    root = tmp_path / "srv"
    (root / "shared").mkdir(parents=True)
    env_file = root / "shared" / ".env"

    run = playbook(play(root, env(1)))
    assert run.failed() == 0, run.results
    assert "v1@" in env_file.read_text() and backups(root) == []  # nothing to back up yet

    run = playbook(play(root, env(1)))
    assert run.failed() == 0 and run.changed() == 0, run.results  # unchanged: no backup
    assert backups(root) == []

    run = playbook(play(root, env(2)))
    assert run.failed() == 0, run.results
    [first] = backups(root)
    assert re.fullmatch(r"\.env\.bak\.\d{8}T\d{6}Z", first.name), first.name
    assert "v1@" in first.read_text() and "v2@" in env_file.read_text()
    assert os.stat(first).st_mode & 0o777 == 0o600 and os.stat(first).st_uid == os.stat(env_file).st_uid

    # Check mode: neither the env file nor the backups change.
    before = (env_file.read_text(), backups(root))
    run = playbook(play(root, env(3)), check=True)
    assert run.failed() == 0, run.results
    assert (env_file.read_text(), backups(root)) == before

    for n in (4, 5):
        assert playbook(play(root, env(n))).failed() == 0
    # Three changes backed up v1, v2 and v4; only the newest two are kept.
    kept = backups(root)
    assert len(kept) == 2, kept
    assert ["v2@" in kept[0].read_text(), "v4@" in kept[1].read_text()] == [True, True]
    assert "v5@" in env_file.read_text()

    # keep=0: no new backup, and the old ones go.
    assert playbook(play(root, env(6), keep=0)).failed() == 0
    assert backups(root) == []


def preflight_play(env_value):
    return [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {"api_env": env_value, "api_start_command": "/bin/true"},
            "tasks": [
                {
                    "name": "Check the settings",
                    "ansible.builtin.include_role": {"name": "stackops.platform.api", "tasks_from": "preflight.yml"},
                }
            ],
        }
    ]


def test_preflight_names_multiline_and_missing_keys_never_their_values(playbook):
    secret = "s3cr3t-line-one\nline-two"
    run = playbook(preflight_play({"DATABASE_URL": secret, "NOTE": "ok"}))
    assert run.failed() == 1
    msg = run.task("Check api_env is a dict holding the required keys")["msg"]
    assert "values spanning lines (systemd EnvironmentFile= takes single-line strings): DATABASE_URL." in msg, msg
    assert "missing: REDIS_URL" in msg, msg
    assert "s3cr3t" not in str(run.results)

    run = playbook(preflight_play(ENV_A))
    assert run.failed() == 0, run.results
