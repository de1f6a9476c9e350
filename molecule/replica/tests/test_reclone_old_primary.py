"""After failover.yml: the fenced old primary is rebuilt as a replica of the new primary, the way README's
"Failover to the replica" says (swap postgres_replication_role in the inventory, run the role on both hosts with
-e postgres_replication_reclone=true). Without reclone the run is refused and changes nothing.

This file turns the fenced host into a standby, so it must run after test_old_primary.py: pytest collects the
files of a directory in name order, and the first fixture below checks the host is still fenced.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import testinfra

testinfra_hosts = ["ansible://replica-primary"]

SCENARIO = Path(__file__).resolve().parents[1]
DATA = "/var/lib/postgresql/15/main"
SERVICE = "postgresql@15-main"
FENCE = "/etc/stackops/postgres-fenced"
MARKER = -3  # failover_probe id written on the new primary; the writer uses ids > 0, the other tests -1 and -2


def inventory():
    return str(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent)


def run_swapped(*args):
    """ansible-playbook swapped/converge.yml (roles swapped by its host_vars); returns (rc, output, seconds)."""
    argv = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        inventory(),
        *args,
        str(SCENARIO / "swapped" / "converge.yml"),
    ]
    started = time.monotonic()
    out = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"},
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)
    return out.returncode, text, time.monotonic() - started


def folded(text):
    return re.sub(r"\s+", " ", text)


def sql(host, sql_text, db="postgres"):
    res = host.run("runuser -u postgres -- psql -XAtq -d %s -c %s", db, sql_text)
    return res.rc, res.stdout.strip(), res.stderr


def preclone_dirs(host):
    listing = host.run("ls -1d %s.stackops-preclone-* 2>/dev/null", DATA).stdout.split()
    return [path for path in listing if path]


def state(host):
    """What a refused run must leave as it was."""
    return {
        "fence": host.file(FENCE).content_string if host.file(FENCE).exists else None,
        "unit": host.run("systemctl is-enabled %s", SERVICE).stdout.strip(),
        "running": host.service(SERVICE).is_running,
        "standby_signal": host.file(f"{DATA}/standby.signal").exists,
        "data_inode": host.run("stat -c %%i %s", DATA).stdout.strip(),
        "pg_control": host.file(f"{DATA}/global/pg_control").sha256sum,
        "auto_conf": host.file(f"{DATA}/postgresql.auto.conf").sha256sum,
        "preclone": preclone_dirs(host),
    }


@pytest.fixture(scope="module")
def fenced(host):
    before = state(host)
    assert before["fence"] and before["unit"] == "masked" and not before["running"], before
    return before


@pytest.fixture(scope="module")
def refused(host, fenced):
    rc, output, seconds = run_swapped("--limit", "replica-primary")
    print(f"swapped converge without reclone: rc={rc} in {seconds:.0f} s")
    return rc, output, state(host)


@pytest.fixture(scope="module")
def recloned(host, refused):
    rc, output, seconds = run_swapped("-e", "postgres_replication_reclone=true")
    recap = [line for line in output.splitlines() if re.match(r"^replica-\w+\s+: ok=", line)]
    print(f"swapped converge with postgres_replication_reclone=true: rc={rc} in {seconds:.0f} s", *recap, sep="\n")
    assert rc == 0, output[-4000:]
    return output


@pytest.fixture(scope="module")
def new_primary():
    return testinfra.get_host(f"ansible://replica-standby?ansible_inventory={inventory()}")


def test_without_reclone_refused_and_nothing_changed(fenced, refused):
    rc, output, after = refused
    assert rc != 0, output[-4000:]
    text = folded(output)
    assert "replica-primary was fenced by playbooks/failover.yml" in text, output[-4000:]
    assert "Nothing was changed" in text and "-e postgres_replication_reclone=true" in text, output[-4000:]
    assert after == fenced


def test_recloned_old_primary_streams_from_the_new_primary(host, new_primary, recloned):
    assert sql(host, "SELECT pg_is_in_recovery()")[1] == "t"
    assert sql(host, "SELECT status || ' ' || sender_host FROM pg_stat_wal_receiver")[1] == "streaming 172.30.61.12"
    assert sql(new_primary, "SELECT pg_is_in_recovery()")[1] == "f"
    senders = sql(new_primary, "SELECT application_name || ' ' || state FROM pg_stat_replication")[1]
    assert senders == "stackops_replica_primary streaming", senders
    assert not host.file(FENCE).exists
    assert host.run("systemctl is-enabled %s", SERVICE).stdout.strip() == "enabled"


def test_row_written_on_new_primary_appears_on_old_primary(host, new_primary, recloned):
    query = f"SELECT count(*) FROM failover_probe WHERE id = {MARKER}"
    assert sql(host, query, db="app")[1] == "0"
    rc, out, err = sql(new_primary, f"INSERT INTO failover_probe (id) VALUES ({MARKER}) RETURNING id", db="app")
    assert rc == 0 and out == str(MARKER), err
    deadline = time.monotonic() + 30
    while sql(host, query, db="app")[1] != "1":
        assert time.monotonic() < deadline, "row written on the new primary never reached the re-cloned old primary"
        time.sleep(0.5)
    # Still a standby: it refuses the write itself.
    rc, _out, err = sql(host, f"INSERT INTO failover_probe (id) VALUES ({MARKER - 1})", db="app")
    assert rc != 0 and "read-only transaction" in err, err


def test_old_data_dir_kept_under_preclone_name(host, fenced, recloned):
    dirs = preclone_dirs(host)
    assert len(dirs) == 1, dirs
    assert re.fullmatch(re.escape(DATA) + r"\.stackops-preclone-\d{8}T\d{6}Z", dirs[0]), dirs[0]
    # The very directory the fenced primary ran on, moved aside (same inode), with its cluster files.
    assert host.run("stat -c %%i %s", dirs[0]).stdout.strip() == fenced["data_inode"]
    old = host.file(dirs[0])
    assert old.user == "postgres" and old.mode == 0o700
    assert host.file(f"{dirs[0]}/PG_VERSION").content_string.strip() == "15"
    assert host.file(f"{dirs[0]}/global/pg_control").exists
    # The clone that replaced it is a new directory.
    assert host.run("stat -c %%i %s", DATA).stdout.strip() != fenced["data_inode"]
