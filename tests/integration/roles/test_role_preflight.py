"""Roles refuse bad or missing input before they change anything.

Run against localhost: a role that got past its checks would try to install packages and
the run would show changed tasks, so changed == 0 plus the message proves the refusal came first.
"""

import pytest
from role_helpers import failure_messages, role_play


def test_redis_without_credentials_is_refused(playbook):
    run = playbook(role_play("redis", {}))
    assert run.failed() == 1
    assert run.changed() == 0
    assert "redis_default_user_password" in failure_messages(run)


@pytest.mark.parametrize(
    ("role_vars", "named"),
    [
        ({"redis_default_user_password": "short"}, "redis_default_user_password"),
        ({"redis_users": [{"name": "app", "password": "x" * 20}], "redis_port": "not-a-port"}, "redis_port"),
        ({"redis_users": [{"name": "app", "password": "x" * 20}], "redis_appendfsync": "sometimes"}, "sometimes"),
        ({"redis_users": [{"name": "bad name", "password": "x" * 20}]}, "bad name"),
        ({"redis_users": [{"name": "app", "password": "tooshort"}]}, "app"),
    ],
)
def test_redis_bad_input_named_and_nothing_changed(playbook, role_vars, named):
    run = playbook(role_play("redis", role_vars))
    assert run.failed() == 1
    assert run.changed() == 0
    assert named in failure_messages(run)


def test_redis_password_not_echoed_on_refusal(playbook):
    secret = "s3cret-but-too-short"[:10]
    run = playbook(role_play("redis", {"redis_default_user_password": secret}))
    assert run.failed() == 1
    assert all(secret not in str(e["res"]) for e in run.results)
