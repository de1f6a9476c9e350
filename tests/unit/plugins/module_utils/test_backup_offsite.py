"""Unit tests of the off-site copy: SigV4 signing, remote listing, parameters, age error mapping.

The S3 round trips (upload, verify, tamper, restore) run against moto's server in
tests/integration/offsite.
"""

from __future__ import annotations

import datetime
import hashlib
import json

import pytest

from ansible_collections.stackops.platform.plugins.module_utils import backup_age
from ansible_collections.stackops.platform.plugins.module_utils import backup_offsite as offsite
from ansible_collections.stackops.platform.plugins.module_utils import backup_offsite_metrics as offsite_metrics
from ansible_collections.stackops.platform.plugins.module_utils import backup_offsite_params as offsite_params
from ansible_collections.stackops.platform.plugins.module_utils import backup_s3 as s3

EXAMPLE_CREDS = {"access_key": "AKIAIOSFODNN7EXAMPLE", "secret_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}


def test_sigv4_matches_the_aws_documented_get_object_example():
    # docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html, "Example: GET Object".
    headers = s3.sign_request(
        "GET",
        "examplebucket.s3.amazonaws.com",
        "/test.txt",
        query={},
        headers={"Range": "bytes=0-9"},
        payload_sha256=s3.EMPTY_SHA256,
        credentials=EXAMPLE_CREDS,
        region="us-east-1",
        now=datetime.datetime(2013, 5, 24, tzinfo=datetime.UTC),
    )
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_multipart_etag_is_md5_of_part_md5s():
    parts = [b"a" * 10, b"b" * 3]
    md5s = [hashlib.md5(p, usedforsecurity=False).digest() for p in parts]
    expected = hashlib.md5(md5s[0] + md5s[1], usedforsecurity=False).hexdigest() + "-2"
    assert s3.multipart_etag(md5s) == expected


def test_client_refuses_a_bad_endpoint():
    with pytest.raises(s3.S3Error, match="endpoint 'ftp://x' must be an http"):
        s3.S3Client("ftp://x", "us-east-1", "b", EXAMPLE_CREDS)


def test_path_and_virtual_addressing_encode_keys():
    path = s3.S3Client("http://127.0.0.1:9000", "r", "bkt", EXAMPLE_CREDS)
    assert path._target("p/My DB/ä.age") == ("127.0.0.1:9000", "/bkt/p/My%20DB/%C3%A4.age")
    virtual = s3.S3Client("https://s3.example.com", "r", "bkt", EXAMPLE_CREDS, addressing_style="virtual")
    assert virtual._target("k") == ("bkt.s3.example.com", "/k")


BASE = {
    "database": "app",
    "backup_dir": "/srv/backups",
    "endpoint": "http://127.0.0.1:9000",
    "bucket": "offsite",
    "access_key": "AK",
    "secret_key": "SK",
}


class ListingClient:
    def __init__(self, keys):
        self.keys = keys

    def list(self, prefix):
        return [{"key": key, "size": 1} for key in self.keys if key.startswith(prefix)]


def test_list_remote_pairs_data_manifest_and_companions():
    params = offsite.check_offsite_params({**BASE, "prefix": "/pg/"})
    keys = [
        "pg/app/app_20260101T020000Z.dump.age",
        "pg/app/app_20260101T020000Z.dump.manifest.json.age",
        "pg/app/app_20260101T020000Z.dump.globals.sql.age",
        "pg/app/app_20260102T020000Z.dir.tar.age",
        "pg/app/app_20260102T020000Z.dir.manifest.json.age",
        "pg/app/app_20260103T020000Z.dump.age",  # upload died before its manifest
        "pg/app/other_20260103T020000Z.dump.age",
        "pg/app/sub/app_20260104T020000Z.dump.age",
        "pg/app2/app_20260105T020000Z.dump.age",
    ]
    remote = offsite.list_remote(ListingClient(keys), params)
    assert [(r["name"], r["good"]) for r in remote] == [
        ("app_20260103T020000Z.dump", False),
        ("app_20260102T020000Z.dir", True),
        ("app_20260101T020000Z.dump", True),
    ]
    oldest = remote[2]
    assert offsite.object_keys(oldest) == [
        "pg/app/app_20260101T020000Z.dump.manifest.json.age",
        "pg/app/app_20260101T020000Z.dump.age",
        "pg/app/app_20260101T020000Z.dump.globals.sql.age",
    ]


@pytest.mark.parametrize(
    ("change", "need", "message"),
    [
        ({"endpoint": "s3.example.com"}, None, "endpoint 's3.example.com' must be an http"),
        ({"bucket": ""}, None, "bucket is required"),
        ({"keep_daily": -1}, None, "off-site keep_daily must be 0 or more, got -1"),
        ({"keep_daily": 0, "keep_monthly": 0}, None, "keep_daily=0, keep_monthly=0 keeps nothing"),
        ({"verify": "maybe"}, None, "verify 'maybe' must be one of head, download"),
        ({"part_size_mb": 1}, None, "part_size_mb must be 5 or more"),
        ({}, "upload", "recipients is empty"),
        ({"recipients": ["AGE-SECRET-KEY-1XYZ"]}, "upload", "recipient 'AGE-SECRET-KEY-1XYZ' is not an age public key"),
        ({}, "download", "needs identity_file"),
        ({"colour": "red"}, None, "unknown off-site option"),
    ],
)
def test_bad_parameters_name_the_value(change, need, message):
    with pytest.raises(offsite.OffsiteError, match=message):
        offsite.check_offsite_params({**BASE, **change}, need=need)


def test_credentials_come_from_the_file_when_not_given(tmp_path):
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"access_key": "FILEAK", "secret_key": "FILESK"}))
    params = offsite.check_offsite_params(
        {**BASE, "access_key": None, "secret_key": None, "credentials_file": str(creds)}
    )
    expected = {"access_key": "FILEAK", "secret_key": "FILESK", "session_token": None}
    assert offsite_params.load_credentials(params) == expected
    params["credentials_file"] = str(tmp_path / "missing.json")
    with pytest.raises(offsite.OffsiteError, match="cannot read off-site credentials_file"):
        offsite_params.load_credentials(params)


@pytest.mark.parametrize(
    ("stderr", "message"),
    [
        (b"age: error: no identity matched any of the recipients", "does not match the recipients"),
        (b"age: error: failed to decrypt and authenticate payload chunk", "damaged or was tampered with"),
        (b"age: error: something else", "age failed: age: error: something else"),
    ],
)
def test_age_errors_are_explained(stderr, message):
    assert message in str(backup_age.age_failure(stderr, "decrypting x"))


def test_metrics_render_the_recorded_state(tmp_path):
    params = offsite.check_offsite_params({**BASE, "backup_dir": str(tmp_path)})
    (tmp_path / "app").mkdir()
    now = datetime.datetime(2026, 2, 20, tzinfo=datetime.UTC)
    offsite_metrics.record_run(params, True, {"duration": 3.5, "uploaded_bytes": 10, "remote_count": 4}, now=now)
    offsite_metrics.record_run(params, False, error="cannot reach S3 endpoint", now=now + datetime.timedelta(days=1))
    path = offsite_metrics.write_metrics(str(tmp_path / "metrics"), params)
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    assert f'stackops_pg_backup_offsite_last_success_timestamp_seconds{{database="app"}} {now.timestamp()!r}' in text
    assert 'stackops_pg_backup_offsite_last_run_success{database="app"} 0' in text
    assert 'stackops_pg_backup_offsite_remote_count{database="app"} 4' in text
    assert "# HELP stackops_pg_backup_offsite_last_run_success" in text
