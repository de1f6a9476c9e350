import pytest
from app import migrate, worker


def test_process_records_and_marks_done():
    statuses, rows = [], []
    job = {"id": "j1", "payload": {"n": 1}}
    worker.process(job, lambda *a: rows.append(a), lambda jid, f: statuses.append((jid, f["status"])), "w/1")
    assert rows == [("j1", '{"n": 1}', "w/1")]
    assert statuses == [("j1", "processing"), ("j1", "done")]


def test_failed_record_leaves_job_not_done():
    statuses = []

    def broken(*_args):
        raise RuntimeError("db down")

    with pytest.raises(RuntimeError, match="db down"):
        worker.process({"id": "j2", "payload": {}}, broken, lambda jid, f: statuses.append(f["status"]), "w")
    assert statuses == ["processing"]


def test_pending_migrations():
    assert [m[0] for m in migrate.pending(set())] == [1, 2]
    assert [m[0] for m in migrate.pending({1})] == [2]
    assert migrate.pending({1, 2}) == []
    assert all("IF NOT EXISTS" in sql for _version, _name, sql in migrate.MIGRATIONS)
