import re

import pytest
from app import metrics


def parse(text):
    samples = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    return samples


def test_counters_histogram_and_info():
    m = metrics.Metrics(buckets=(0.1, 0.5))
    m.observe("GET", "/", 200, 0.05)
    m.observe("GET", "/", 200, 0.3)
    m.observe("POST", "/jobs", 503, 2.0)
    s = parse(m.render("1.2.3", "blue"))
    assert s['http_requests_total{method="GET",path="/",status="200"}'] == 2
    assert s['http_requests_total{method="POST",path="/jobs",status="503"}'] == 1
    assert s["http_request_errors_total"] == 1
    assert s['http_request_duration_seconds_bucket{le="0.1"}'] == 1
    assert s['http_request_duration_seconds_bucket{le="0.5"}'] == 2
    assert s['http_request_duration_seconds_bucket{le="+Inf"}'] == 3
    assert s["http_request_duration_seconds_count"] == 3
    assert s["http_request_duration_seconds_sum"] == pytest.approx(2.35)
    assert s['app_info{version="1.2.3",color="blue"}'] == 1


def test_type_lines_and_bucket_order():
    text = metrics.Metrics().render("v", "green")
    assert "# TYPE http_requests_total counter" in text
    assert "# TYPE http_request_duration_seconds histogram" in text
    assert "# TYPE app_info gauge" in text
    les = re.findall(r'_bucket\{le="([^"]+)"\}', text)
    assert les[-1] == "+Inf"
    assert [float(x) for x in les[:-1]] == sorted(float(x) for x in les[:-1])
    assert text.endswith("\n")


@pytest.mark.parametrize(
    ("path", "label"),
    [("/", "/"), ("/health", "/health"), ("/jobs/abc123", "/jobs/:id"), ("/items?x=1", "/items"), ("/x/y", "other")],
)
def test_path_labels_bounded(path, label):
    assert metrics.normalize_path(path) == label


def test_label_values_escaped():
    assert metrics.format_labels({"a": 'x"y\\z\n'}) == '{a="x\\"y\\\\z\\n"}'
