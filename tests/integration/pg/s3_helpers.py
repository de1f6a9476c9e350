"""The test endpoint for off-site copies: moto's S3 server on a free loopback port, and age keys.

``moto_s3`` starts ``moto_server`` (moto[server], pinned in requirements/test.txt) once per session
and yields a handle naming the endpoint; every test gets its own bucket through ``bucket``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from pg_helpers import free_port

# The off-site tests also call the module_utils directly: make the collection link importable.
for _path in reversed(os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep)):
    if _path and _path not in sys.path:
        sys.path.insert(0, _path)

from ansible_collections.stackops.platform.plugins.module_utils.backup_s3 import S3Client  # noqa: E402

ACCESS_KEY = "STANDINACCESSKEY"  # moto accepts any credentials; never real ones
SECRET_KEY = "STANDIN-secret-key-for-moto-only"
REGION = "us-east-1"


@dataclass
class S3Endpoint:
    """moto_server, named as the test endpoint of the off-site tests."""

    url: str
    bucket: str = ""

    def client(self, **kwargs) -> S3Client:
        creds = {"access_key": ACCESS_KEY, "secret_key": SECRET_KEY}
        return S3Client(self.url, REGION, self.bucket, creds, **kwargs)

    def options(self, **extra) -> dict:
        """The modules' offsite option for this endpoint and bucket."""
        return {"endpoint": self.url, "region": REGION, "bucket": self.bucket, "prefix": "ci",
                "access_key": ACCESS_KEY, "secret_key": SECRET_KEY, **extra}

    def objects(self) -> dict[str, bytes]:
        client = self.client()
        result = {}
        for item in client.list(""):
            chunks = []
            client.get(item["key"], chunks.append)
            result[item["key"]] = b"".join(chunks)
        return result


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory):
    server = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    if not os.path.exists(server):
        pytest.fail("moto_server not found: install requirements/test.txt (moto[server])")
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=2).close()
                break
            except (urllib.error.URLError, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not start on {url}: {log.read_text()}")
                time.sleep(0.2)
        yield S3Endpoint(url=url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def bucket(moto_s3):
    endpoint = S3Endpoint(url=moto_s3.url, bucket=f"stackops-{uuid.uuid4().hex[:12]}")
    endpoint.client().request("PUT", "")
    return endpoint


@dataclass
class AgeKey:
    identity_file: Path
    identity: str
    recipient: str


def age_key(directory: Path, name: str = "key") -> AgeKey:
    path = directory / f"{name}.txt"
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    path.chmod(0o600)
    recipient = subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True).stdout
    return AgeKey(identity_file=path, identity=path.read_text(), recipient=recipient.strip())
