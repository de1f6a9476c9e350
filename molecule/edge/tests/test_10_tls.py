"""testssl.sh (Debian's package, command `testssl`) from edge-api2 against the edge: protocols, HSTS, banner,
vulnerabilities."""

import json

import pytest
from conftest import CA, EDGE

# testssl.sh's ids of its vulnerability checks (-U).
VULNERABILITY_IDS = {
    "heartbleed",
    "CCS",
    "ticketbleed",
    "ROBOT",
    "secure_renego",
    "secure_client_renego",
    "CRIME_TLS",
    "BREACH",
    "POODLE_SSL",
    "fallback_SCSV",
    "SWEET32",
    "FREAK",
    "DROWN",
    "LOGJAM",
    "LOGJAM-common_primes",
    "BEAST",
    "LUCKY13",
    "winshock",
    "RC4",
}


@pytest.fixture(scope="module")
def findings(hosts):
    client = hosts("edge-api2")
    client.run("rm -f /tmp/testssl.json")
    out = client.run(
        "testssl --quiet --color 0 --warnings off --nodns min --ip %s --add-ca %s --jsonfile /tmp/testssl.json "
        "--protocols --headers --vulnerable https://edge.test/",
        EDGE,
        CA,
    )
    print("\n---- testssl.sh summary (edge.test on", EDGE, ")\n" + out.stdout)
    result = json.loads(client.file("/tmp/testssl.json").content_string)
    assert result, out.stdout + out.stderr
    return {item["id"]: item for item in result}


@pytest.mark.parametrize("protocol", ["SSLv2", "SSLv3", "TLS1", "TLS1_1"])
def test_old_protocols_refused(findings, protocol):
    assert findings[protocol]["finding"].startswith("not offered"), findings[protocol]


@pytest.mark.parametrize("protocol", ["TLS1_2", "TLS1_3"])
def test_current_protocols_offered(findings, protocol):
    assert findings[protocol]["finding"].startswith("offered"), findings[protocol]


def test_hsts_at_least_a_year(findings):
    hsts = findings["HSTS_time"]
    seconds = int(hsts["finding"].split("=")[1].split()[0])
    assert seconds >= 31536000, hsts


def test_server_banner_without_version(findings):
    assert findings["banner_server"]["finding"] == "nginx", findings["banner_server"]


def test_no_vulnerability_findings(findings):
    checked = VULNERABILITY_IDS & set(findings)
    assert {"heartbleed", "ROBOT", "POODLE_SSL", "BREACH", "SWEET32", "FREAK", "DROWN", "LOGJAM"} <= checked, checked
    bad = {i: findings[i] for i in checked if findings[i]["severity"] not in ("OK", "INFO")}
    assert not bad, bad
