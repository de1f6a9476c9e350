import pytest
from app import config, health, requestid


def ok():
    return None


def down():
    raise ConnectionError("connection refused")


@pytest.mark.parametrize(
    ("db", "redis", "forced", "status", "failed"),
    [
        (ok, ok, False, 200, None),
        (down, ok, False, 503, ["db"]),
        (ok, down, False, 503, ["redis"]),
        (down, down, False, 503, ["db", "redis"]),
        (ok, ok, True, 503, ["forced"]),
    ],
)
def test_health(db, redis, forced, status, failed):
    code, body = health.evaluate(db, redis, version="1.0.0", color="blue", forced_down=forced)
    assert code == status
    assert body["version"] == "1.0.0" and body["color"] == "blue"
    assert body.get("failed") == failed
    if failed is None:
        assert body == {"status": "ok", "db": "ok", "redis": "ok", "version": "1.0.0", "color": "blue"}
    if db is down:
        assert "connection refused" in body["db"]


def test_health_without_backend_configured_fails():
    code, body = health.evaluate(None, ok, version="v", color="green")
    assert code == 503 and body["db"] == "not configured"


@pytest.mark.parametrize("incoming", ["abc-123", "0f" * 16, "req.1:2_3"])
def test_request_id_kept(incoming):
    assert requestid.request_id(incoming) == incoming


@pytest.mark.parametrize("incoming", [None, "", "has space", "x" * 200, "bad\nheader", "<script>"])
def test_request_id_generated(incoming):
    rid = requestid.request_id(incoming)
    assert len(rid) == 32 and int(rid, 16) >= 0
    assert rid != requestid.request_id(incoming)


def test_settings_from_env(tmp_path):
    env = {"APP_PORT": "8002", "APP_COLOR": "green", "DATABASE_URL": "postgresql://x", "APP_FAIL_HEALTH": "1"}
    s = config.load(env)
    assert (s.host, s.port, s.color, s.fail_health) == ("127.0.0.1", 8002, "green", True)
    assert s.health_forced_down()
    assert config.load({}, host="0.0.0.0", port=9).port == 9  # noqa: S104 - argument only


def test_version_file_beats_env(tmp_path):
    assert config.release_version(tmp_path, {"APP_VERSION": "from-env"}) == "from-env"
    (tmp_path / "VERSION").write_text("2.0.0\n")
    assert config.release_version(tmp_path, {"APP_VERSION": "from-env"}) == "2.0.0"
    assert config.release_version(tmp_path / "none", {}) == "dev"
