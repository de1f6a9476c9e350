"""The deploy marker: audit_record.yml (the audit line and the node exporter marker, one deploy_audit call) and
deploy_marker.yml (the Grafana annotation), as deploy.yml, rollback.yml and switch.yml end each event on an api host.

The marker goes through the real pipeline: the audit record writes node exporter's textfile, a node exporter test
instance exports it, a Prometheus test instance scrapes it, and the dashboards' annotation query finds it.
The Grafana annotation is posted to a recorder speaking Grafana's HTTP API, and skipped for the STAND-IN.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from prom_helpers import NODE_EXPORTER, PROMETHEUS, free_port, need, node_exporter, query, scraping_prometheus

REPO_ROOT = Path(__file__).resolve().parents[3]
MARKER_TASKS = str(REPO_ROOT / "playbooks" / "tasks" / "deploy_marker.yml")
AUDIT_TASKS = str(REPO_ROOT / "playbooks" / "tasks" / "audit_record.yml")
METRIC = "stackops_deploy_event_timestamp_seconds"


def marker_play(event, color, release=None, **play_vars):
    """The end of a successful event as deploy_host.yml, rollback_host.yml and switch.yml leave it: the facts the
    switch and the release module left, then the audit record (the marker) and, with a URL, the Grafana include."""
    facts = {"__audit_started": time.time() - 1, "__deploy_switch": {"active": color, "switched": True}}
    marker_vars = {"__deploy_marker_event": event, "__deploy_marker_color": color}
    if release is not None:
        marker_vars["__deploy_marker_release"] = release
        facts.update(__deploy_activated={"release_id": release}, __rollback_target=release)
    return [
        {
            "name": "Record a marker",
            "hosts": "localhost",
            "gather_facts": False,
            # settings.yml's colours directory (switch.yml's marker reads the link of the colour now serving).
            "vars": {
                "api_app_name": "app",
                "__deploy_colors_dir": f"{play_vars.get('api_deploy_root')}/colors",
                **play_vars,
            },
            "tasks": [
                {"name": "Leave the facts of the event", "ansible.builtin.set_fact": facts},
                {
                    "name": "Record the event",
                    "ansible.builtin.include_tasks": AUDIT_TASKS,
                    "vars": {"__audit_event": event, "__audit_result": "ok"},
                },
                {
                    "name": "Post the annotation",
                    "ansible.builtin.include_tasks": MARKER_TASKS,
                    "vars": marker_vars,
                    "when": "deploy_marker_grafana_url | default('') | length > 0",
                },
            ],
        }
    ]


def dashboard_annotation(name):
    dashboard = json.loads((REPO_ROOT / "roles" / "grafana" / "files" / "dashboards" / name).read_text())
    (marker,) = [a for a in dashboard["annotations"]["list"] if a["datasource"]["type"] == "prometheus"]
    return marker


def wait_for(base_url, expr, predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        answer = query(base_url, expr)
        if predicate(answer["data"]["result"]) or time.monotonic() > deadline:
            return answer["data"]["result"]
        time.sleep(0.5)


def test_deploy_and_switch_markers_reach_prometheus(playbook, tmp_path):
    need(PROMETHEUS, NODE_EXPORTER)
    textfile = tmp_path / "textfile"
    colors = tmp_path / "srv" / "colors"
    colors.mkdir(parents=True)
    (colors / "blue").symlink_to(tmp_path / "srv" / "releases" / "r1")
    with (
        node_exporter(tmp_path / "ne", textfile) as target,
        scraping_prometheus(tmp_path / "prom", "node", [target]) as prom,
    ):
        before = time.time()
        run = playbook(
            marker_play("deploy", "green", "r2", api_deploy_root=str(tmp_path), deploy_marker_metrics_dir=str(textfile))
        )
        assert run.failed() == 0, run.results
        assert sorted(p.name for p in textfile.iterdir()) == ["stackops_deploy_app.prom"]

        result = wait_for(prom, METRIC, lambda r: any(s["metric"].get("release") == "r2" for s in r))
        print(f"query {METRIC}: {json.dumps(result)}")
        (series,) = result
        assert {k: series["metric"][k] for k in ("app", "event", "release", "color", "job")} == {
            "app": "app",
            "event": "deploy",
            "release": "r2",
            "color": "green",
            "job": "node",
        }
        assert before - 1 <= float(series["value"][1]) <= time.time()
        assert query(prom, "node_textfile_scrape_error")["data"]["result"][0]["value"][1] == "0"

        # A switch names the release its colour's link points at; the deploy's series goes stale.
        run = playbook(
            marker_play(
                "switch",
                "blue",
                api_deploy_root=str(tmp_path),
                deploy_marker_metrics_dir=str(textfile),
                __deploy_colors_dir=str(colors),
            )
        )
        assert run.failed() == 0, run.results
        result = wait_for(prom, METRIC, lambda r: [s["metric"].get("event") for s in r] == ["switch"])
        print(f"query {METRIC}: {json.dumps(result)}")
        assert [(s["metric"]["event"], s["metric"]["release"], s["metric"]["color"]) for s in result] == [
            ("switch", "r1", "blue")
        ]

        # What the dashboards draw: their annotation query finds both events over the last minutes.
        for name in ("api.json", "operations.json"):
            marker = dashboard_annotation(name)
            assert marker["useValueForTime"] is True
            expr = marker["expr"].replace(METRIC, f"last_over_time({METRIC}[5m])")
            drawn = query(prom, expr)["data"]["result"]
            print(f"{name} annotation query: {json.dumps(drawn)}")
            assert sorted((s["metric"]["event"], s["metric"]["release"]) for s in drawn) == [
                ("deploy", "r2"),
                ("switch", "r1"),
            ]
            assert all(abs(float(s["value"][1]) / 1000 - time.time()) < 120 for s in drawn)
        api = dashboard_annotation("api.json")
        assert api["filter"] == {"exclude": False, "ids": [2, 3]}  # the error and latency panels


def test_check_mode_writes_no_marker(playbook, tmp_path):
    textfile = tmp_path / "textfile"
    run = playbook(
        marker_play("rollback", "blue", "r1", api_deploy_root=str(tmp_path), deploy_marker_metrics_dir=str(textfile)),
        check=True,
    )
    assert run.failed() == 0, run.results
    assert not textfile.exists() or not list(textfile.iterdir())


def test_empty_metrics_dir_disables_the_textfile(playbook, tmp_path):
    run = playbook(marker_play("rollback", "blue", "r1", api_deploy_root=str(tmp_path), deploy_marker_metrics_dir=""))
    assert run.failed() == 0, run.results
    logged = run.task("Append to the audit log the rollback")
    assert logged["marker_file"] is None and logged["entry"]["release"] == "r1"
    assert (tmp_path / "audit.jsonl").is_file() and not list(tmp_path.rglob("*.prom"))


class Grafana:
    """Speaks the two Grafana endpoints the marker uses; records annotation posts. standin=True answers like
    the STAND-IN (tests/standins/build_grafana_standin.py)."""

    def __init__(self, standin=False):
        self.posts = []
        grafana = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if standin:
                    self._send(200, {"database": "ok", "version": "standin", "commit": "STAND-IN, not Grafana"})
                else:
                    self._send(200, {"database": "ok", "version": "11.3.0", "commit": "abc"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                grafana.posts.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                if self.headers.get("Authorization") != "Bearer glsa_test":
                    self._send(401, {"message": "Unauthorized"})
                else:
                    self._send(200, {"id": len(grafana.posts), "message": "Annotation added"})

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def grafana(request):
    server = Grafana(standin=request.param)
    yield server
    server.close()


@pytest.mark.parametrize("grafana", [False], indirect=True)
def test_grafana_annotation_posted_to_a_real_grafana(playbook, tmp_path, grafana):
    before = time.time()
    run = playbook(
        marker_play(
            "deploy",
            "green",
            "r2",
            api_deploy_root=str(tmp_path),
            deploy_marker_metrics_dir=str(tmp_path / "textfile"),
            deploy_marker_grafana_url=grafana.url + "/",
            deploy_marker_grafana_token="glsa_test",
            stackops_environment="staging",
        )
    )
    assert run.failed() == 0, run.results
    assert run.task("Report the Grafana annotation")["msg"] == "Grafana annotation 1 recorded"
    (post,) = grafana.posts
    assert post["path"] == "/api/annotations"
    assert post["auth"] == "Bearer glsa_test"
    assert post["body"]["tags"] == ["stackops", "deploy-marker", "app", "deploy", "staging"]
    assert "release r2 serving from green" in post["body"]["text"]
    assert before * 1000 - 1000 <= post["body"]["time"] <= time.time() * 1000


@pytest.mark.parametrize("grafana", [False], indirect=True)
def test_grafana_refusal_is_reported_not_fatal(playbook, tmp_path, grafana):
    run = playbook(
        marker_play(
            "rollback",
            "blue",
            "r1",
            api_deploy_root=str(tmp_path),
            deploy_marker_metrics_dir=str(tmp_path / "textfile"),
            deploy_marker_grafana_url=grafana.url,
            deploy_marker_grafana_token="wrong",
        )
    )
    assert run.failed() == 0, run.results
    assert run.task("Report the Grafana annotation")["msg"].startswith("Grafana refused the annotation: HTTP 401")
    assert (tmp_path / "textfile" / "stackops_deploy_app.prom").exists()


@pytest.mark.parametrize("grafana", [True], indirect=True)
def test_grafana_standin_is_skipped(playbook, tmp_path, grafana):
    run = playbook(
        marker_play(
            "switch",
            "green",
            "r2",
            api_deploy_root=str(tmp_path),
            deploy_marker_metrics_dir=str(tmp_path / "textfile"),
            deploy_marker_grafana_url=grafana.url,
            deploy_marker_grafana_token="glsa_test",
        )
    )
    assert run.failed() == 0, run.results
    assert run.task_status("Post the annotation to Grafana") == "runner_on_skipped"
    assert "is the STAND-IN" in run.task("Report the Grafana annotation")["msg"]
    assert grafana.posts == []


def test_grafana_down_is_reported_not_fatal(playbook, tmp_path):
    run = playbook(
        marker_play(
            "deploy",
            "green",
            "r2",
            api_deploy_root=str(tmp_path),
            deploy_marker_metrics_dir=str(tmp_path / "textfile"),
            deploy_marker_grafana_url=f"http://127.0.0.1:{free_port()}",
            deploy_marker_grafana_token="glsa_test",
        )
    )
    assert run.failed() == 0, run.results
    assert "does not answer" in run.task("Report the Grafana annotation")["msg"]


@pytest.mark.parametrize("grafana", [False], indirect=True)
def test_check_mode_posts_no_annotation(playbook, tmp_path, grafana):
    extra = {"deploy_marker_grafana_url": grafana.url, "deploy_marker_grafana_token": "glsa_test"}
    textfile = tmp_path / "textfile"
    run = playbook(
        marker_play(
            "deploy", "green", "r2", api_deploy_root=str(tmp_path), deploy_marker_metrics_dir=str(textfile), **extra
        ),
        check=True,
    )
    assert run.failed() == 0, run.results
    assert run.task("Report the Grafana annotation")["msg"] == "check mode: no Grafana annotation posted"
    assert grafana.posts == []
    assert not textfile.exists() or not list(textfile.iterdir())


@pytest.mark.parametrize(
    ("path", "event"),
    [
        ("playbooks/tasks/deploy_host.yml", "deploy"),
        ("playbooks/tasks/rollback_host.yml", "rollback"),
        ("playbooks/switch.yml", "switch"),
    ],
)
def test_every_deploy_rollback_and_switch_records_a_marker(path, event):
    """The wiring: the file that ends each operation includes the Grafana annotation file with its event (the
    textfile marker comes with the audit record, which audited.yml writes around all three)."""
    docs = yaml.safe_load((REPO_ROOT / path).read_text())
    tasks = docs[0]["tasks"] if isinstance(docs[0], dict) and "tasks" in docs[0] else docs
    (include,) = [t for t in tasks if str(t.get("ansible.builtin.include_tasks", "")).endswith("deploy_marker.yml")]
    assert include["vars"]["__deploy_marker_event"] == event
    assert include["vars"]["__deploy_marker_color"] == "{{ __deploy_switch.active }}"
    # After the switch: the marker names what now serves.
    switches = [i for i, t in enumerate(tasks) if t is not include and "switch" in str(t.get("name", "")).lower()]
    assert switches and tasks.index(include) > max(switches)
