"""site.yml refuses vault placeholders before any role runs."""

from pathlib import Path

SITE = str(Path(__file__).resolve().parents[3] / "playbooks" / "site.yml")


def test_site_refuses_placeholder_secrets(playbook):
    run = playbook(
        SITE,
        extravars={"vault_redis_app_password": "CHANGE_ME", "vault_postgres_app_password": "a-real-one-0123456789"},
    )
    assert run.failed() == 1
    assert run.changed() == 0
    messages = " ".join(str(e["res"].get("msg", "")) for e in run.results if e["event"] == "runner_on_failed")
    assert "vault_redis_app_password" in messages
    assert "vault_postgres_app_password" not in messages
    assert "a-real-one-0123456789" not in str([e["res"] for e in run.results])
