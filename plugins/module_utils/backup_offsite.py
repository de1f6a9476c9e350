# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Encrypted off-site copies of pg_backup backups in an S3-compatible bucket (standard library + age).

Every object is encrypted on the database host with ``age`` to the inventory's public recipients
before it leaves; the bucket never holds plaintext. The private identity is needed only to restore
and travels through a 0600 file, never a command line. Layout in the bucket::

    <prefix>/<database>/<name>.age                 the dump (custom format)
    <prefix>/<database>/<name>.tar.age             the dump directory as a tar (directory format)
    <prefix>/<database>/<name>.<companion>.age     files beside the backup named <name>.* (globals)
    <prefix>/<database>/<name>.manifest.json.age   uploaded last: a remote backup is complete with it

Each object carries ``x-amz-meta-sha256`` (of the ciphertext); after each upload size, sha256 and
the server's MD5 ETag are compared with what was sent (``verify=download`` also re-reads the
object). A download is checked against that sha256, age authenticates every chunk while
decrypting, and the plaintext is compared with the manifest's sha256 before a restore may begin.

``sync`` uploads the local backups the remote GFS policy would keep and that the bucket lacks,
then applies that policy to the bucket. A failed upload removes that backup's objects from the
bucket, records the failure for the metrics and never touches a local backup.

The timer runs this file as ``python3 backup_offsite.py --config /etc/stackops/pg_offsite-<db>.json``
after the backup, and with ``--write-metrics DIR`` from ExecStopPost.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

try:
    from ansible_collections.stackops.platform.plugins.module_utils import backup_retention
    from ansible_collections.stackops.platform.plugins.module_utils import pg_backup_core as core
    from ansible_collections.stackops.platform.plugins.module_utils.backup_s3 import META_SHA256, S3Client, S3Error
except ImportError:  # run as a script by the backup timer: the installed sibling files
    import backup_retention
    import pg_backup_core as core
    from backup_s3 import META_SHA256, S3Client, S3Error

STATE_FILE = ".offsite-state.json"
LOCK_FILE = ".offsite.lock"
WORK_PREFIX = ".offsite-work-"  # a private directory per sync; never matched by pg_backup's stale cleanup
WORK_SUFFIX = ".offsite.partial"
VERIFY_MODES = ("head", "download")
METRICS_PREFIX = "stackops_pg_backup_offsite"
METRIC_HELP = {
    "last_success_timestamp_seconds": "Unix time of the last off-site sync that uploaded and verified every copy.",
    "last_run_success": "1 if the last off-site sync succeeded, else 0.",
    "last_run_timestamp_seconds": "Unix time the last off-site sync finished, successful or not.",
    "last_duration_seconds": "Seconds the last off-site sync took (encrypt, upload, verify, remote retention).",
    "last_uploaded_bytes": "Encrypted bytes the last off-site sync uploaded.",
    "remote_count": "Complete encrypted backups in the bucket after the last successful sync.",
}

OFFSITE_OPTIONS = {
    "database": (str, None),
    "backup_dir": (str, None),
    "endpoint": (str, None),
    "region": (str, "us-east-1"),
    "bucket": (str, None),
    "prefix": (str, ""),
    "addressing_style": (str, "path"),
    "ca_file": (str, None),
    "access_key": (str, None),
    "secret_key": (str, None),
    "session_token": (str, None),
    "credentials_file": (str, None),
    "recipients": (list, None),
    "identity_file": (str, None),
    "age_path": (str, None),
    "verify": (str, "head"),
    "part_size_mb": (int, 64),
    "timeout": (int, 60),
    "attempts": (int, 3),
    **{rule: (int, None) for rule in backup_retention.COUNT_RULES},
}
SECRET_OPTIONS = ("access_key", "secret_key", "session_token")


def offsite_argument_spec():
    """Suboptions of the modules' ``offsite`` option (see the offsite doc fragment); database and
    backup_dir come from the module's own options."""
    spec = {
        "endpoint": {"type": "str", "required": True},
        "region": {"type": "str", "default": "us-east-1"},
        "bucket": {"type": "str", "required": True},
        "prefix": {"type": "str", "default": ""},
        "addressing_style": {"type": "str", "choices": ["path", "virtual"], "default": "path"},
        "ca_file": {"type": "path"},
        "access_key": {"type": "str", "no_log": True},
        "secret_key": {"type": "str", "no_log": True},
        "session_token": {"type": "str", "no_log": True},
        "credentials_file": {"type": "path"},
        "recipients": {"type": "list", "elements": "str"},
        "age_path": {"type": "path"},
        "verify": {"type": "str", "choices": list(VERIFY_MODES), "default": "head"},
        "part_size_mb": {"type": "int", "default": 64},
        "timeout": {"type": "int", "default": 60},
        "attempts": {"type": "int", "default": 3},
    }
    spec.update({rule: {"type": "int"} for rule in backup_retention.COUNT_RULES})
    return spec


class OffsiteError(core.PgBackupError):
    """An off-site step failed; the message says which object and why."""


# --------------------------------------------------------------------------- parameters


def check_offsite_params(params, need=None):
    """Fill defaults and check values. ``need``: "upload" (recipients) or "download" (identity)."""
    unknown = sorted(set(params) - set(OFFSITE_OPTIONS))
    if unknown:
        raise OffsiteError(f"unknown off-site option(s) {', '.join(unknown)}: valid are {', '.join(OFFSITE_OPTIONS)}")
    result = {}
    for key, (kind, default) in OFFSITE_OPTIONS.items():
        value = params.get(key)
        if value is None:
            value = default
        elif kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise OffsiteError(f"off-site {key} must be an integer, got {value!r}") from None
        elif kind is list and not isinstance(value, list):
            raise OffsiteError(f"off-site {key} must be a list, got {value!r}")
        elif kind is str:
            value = str(value)
        result[key] = value
    core.validate_database_name(result["database"])
    if not result["backup_dir"] and need != "download":
        raise OffsiteError("off-site backup_dir is required: the directory pg_backup writes to")
    if not result["endpoint"] or not result["endpoint"].startswith(("http://", "https://")):
        raise OffsiteError(f"off-site endpoint {result['endpoint']!r} must be an http:// or https:// URL")
    if not result["bucket"]:
        raise OffsiteError("off-site bucket is required: the S3 bucket that receives the encrypted copies")
    if result["addressing_style"] not in ("path", "virtual"):
        raise OffsiteError(f"off-site addressing_style {result['addressing_style']!r} must be path or virtual")
    if result["verify"] not in VERIFY_MODES:
        raise OffsiteError(f"off-site verify {result['verify']!r} must be one of {', '.join(VERIFY_MODES)}")
    if result["part_size_mb"] < 5:
        raise OffsiteError(f"off-site part_size_mb must be 5 or more (S3's minimum part), got {result['part_size_mb']}")
    for key in ("timeout", "attempts"):
        if result[key] < 1:
            raise OffsiteError(f"off-site {key} must be 1 or more, got {result[key]}")
    result["prefix"] = result["prefix"].strip("/")
    try:
        backup_retention.check_policy({rule: result[rule] for rule in backup_retention.COUNT_RULES})
    except backup_retention.RetentionError as exc:
        raise OffsiteError(f"off-site {exc}") from None
    if need == "upload":
        recipients = result["recipients"] or []
        if not recipients:
            raise OffsiteError("off-site recipients is empty: list the age public keys (age1...) that may decrypt")
        for recipient in recipients:
            if not isinstance(recipient, str) or not recipient.startswith(("age1", "ssh-ed25519 ", "ssh-rsa ")):
                raise OffsiteError(f"off-site recipient {recipient!r} is not an age public key (age1...)")
    if need == "download" and not result["identity_file"]:
        raise OffsiteError("restoring an off-site backup needs identity_file: the vaulted age identity in a 0600 file")
    return result


def load_credentials(params):
    """access_key / secret_key (/ session_token) from the options or the 0600/0640 credentials file."""
    creds = {key: params.get(key) for key in SECRET_OPTIONS}
    if params.get("credentials_file"):
        path = params["credentials_file"]
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError) as exc:
            raise OffsiteError(f"cannot read off-site credentials_file {path}: {exc}") from None
        if not isinstance(data, dict):
            raise OffsiteError(f"off-site credentials_file {path} must hold a JSON object")
        for key in SECRET_OPTIONS:
            creds[key] = creds[key] or data.get(key)
    if not creds["access_key"] or not creds["secret_key"]:
        raise OffsiteError("off-site access_key and secret_key are required (options or credentials_file)")
    return creds


def make_client(params):
    try:
        return S3Client(
            params["endpoint"],
            params["region"],
            params["bucket"],
            load_credentials(params),
            addressing_style=params["addressing_style"],
            ca_file=params["ca_file"] or None,  # the role writes "" for the system store
            timeout=params["timeout"],
            attempts=params["attempts"],
            part_size=params["part_size_mb"] * 1024 * 1024,
        )
    except S3Error as exc:
        raise OffsiteError(str(exc)) from None


def policy_of(params):
    return {rule: params[rule] for rule in backup_retention.COUNT_RULES}


# --------------------------------------------------------------------------- names


def remote_dir(params):
    return "/".join(part for part in (params["prefix"], params["database"]) if part) + "/"


def data_suffix(fmt):
    return ".tar.age" if fmt == "directory" else ".age"


def list_remote(client, params):
    """Remote backups, newest first: complete (manifest and data) are good, the rest are not."""
    base = remote_dir(params)
    found = {}
    try:
        objects = client.list(base)
    except S3Error as exc:
        raise OffsiteError(f"cannot list off-site backups in {params['bucket']}/{base}: {exc}") from None
    for obj in objects:
        rest = obj["key"][len(base) :]
        if "/" in rest or not rest.endswith(".age"):
            continue
        plain = rest[: -len(".age")]
        name = plain[: -len(".tar")] if plain.endswith(".tar") else plain
        head = name
        role = "data"
        if head.endswith(core.MANIFEST_SUFFIX):
            head, role = head[: -len(core.MANIFEST_SUFFIX)], "manifest"
        parsed = core.parse_backup_name(params["database"], head)
        if not parsed:
            # <name>.<companion>: strip one extension at a time until a backup name remains.
            stem = head
            while "." in stem and not parsed:
                stem = stem.rsplit(".", 1)[0]
                parsed = core.parse_backup_name(params["database"], stem)
            if not parsed:
                continue
            head, role = stem, "companion"
        entry = found.setdefault(
            head,
            {
                "name": head,
                "timestamp": parsed[0],
                "format": parsed[1],
                "data": None,
                "manifest": None,
                "companions": [],
            },
        )
        if role == "companion":
            entry["companions"].append(obj["key"])
        elif role == "manifest":
            entry["manifest"] = obj["key"]
        elif rest == head + data_suffix(parsed[1]):
            entry["data"] = obj["key"]
    backups = list(found.values())
    for item in backups:
        item["good"] = bool(item["data"] and item["manifest"])
    backups.sort(key=lambda item: (item["timestamp"], item["name"]), reverse=True)
    return backups


def object_keys(remote):
    """Keys of one remote backup, manifest first (deleting it first makes the rest incomplete at once)."""
    keys = [remote["manifest"], remote["data"], *remote["companions"]]
    return [key for key in keys if key]


# --------------------------------------------------------------------------- age


def find_age(params, name="age"):
    path = params.get("age_path") or shutil.which(name) or f"/usr/bin/{name}"
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise OffsiteError(f"{name} not found at {path}: install the Debian package age or set age_path")
    return path


def _age_failure(proc_stderr, what):
    text = (proc_stderr or b"").decode("utf-8", "replace").strip()
    if "no identity matched" in text:
        return OffsiteError(f"{what}: the age identity does not match the recipients of this backup ({text})")
    if "failed to decrypt" in text or "header" in text or "authenticate" in text:
        return OffsiteError(f"{what}: the object is damaged or was tampered with, age refused it ({text})")
    return OffsiteError(f"{what}: age failed: {text}")


def encrypt(params, source, out_path, is_dir):
    """Encrypt a file, or a directory as an uncompressed tar stream, to ``out_path`` (0600)."""
    argv = [find_age(params)]
    for recipient in params["recipients"]:
        argv.extend(["-r", recipient])
    argv.extend(["-o", out_path])
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    if not is_dir:
        proc = subprocess.run([*argv, source], capture_output=True, check=False)
        if proc.returncode != 0:
            raise _age_failure(proc.stderr, f"encrypting {source}")
        return
    proc = subprocess.Popen([*argv, "-"], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with tarfile.open(fileobj=proc.stdin, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            tar.add(source, arcname=os.path.basename(source), recursive=True)
        proc.stdin.close()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    stderr = proc.stderr.read()
    if proc.wait() != 0:
        raise _age_failure(stderr, f"encrypting {source}")


def decrypt_file(params, source, out_path, what):
    argv = [find_age(params), "-d", "-i", params["identity_file"], "-o", out_path, source]
    proc = subprocess.run(argv, capture_output=True, check=False)
    if proc.returncode != 0:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(out_path)
        raise _age_failure(proc.stderr, what)


def safe_extract(tar_path, dest, name):
    """Extract a directory backup's tar: regular files and directories under ``name/`` only."""
    with tarfile.open(tar_path, mode="r:") as tar:
        members = tar.getmembers()
        for member in members:
            parts = member.name.split("/")
            if parts[0] != name or ".." in parts or member.name.startswith("/"):
                raise OffsiteError(f"directory backup {name} holds an unexpected path {member.name!r}: refusing")
            if not (member.isfile() or member.isdir()):
                raise OffsiteError(f"directory backup {name} holds a link or device {member.name!r}: refusing")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, members=members, filter="data")
        else:  # pragma: no cover - Pythons without PEP 706; members were checked above
            tar.extractall(dest, members=members)  # noqa: S202


# --------------------------------------------------------------------------- upload


def _sha256_file(path):
    sha, size = core.hash_file(path)
    return sha, size


def upload_backup(client, params, backup, work_dir):
    """Encrypt and upload one local backup (data, companions, manifest last) and verify each object.

    On any failure the objects of this backup already in the bucket are deleted and OffsiteError is
    raised; the local backup is never touched. Returns the encrypted bytes sent.
    """
    base = remote_dir(params)
    name = backup["name"]
    db_dir = os.path.dirname(backup["path"])
    is_dir = backup["format"] == "directory"
    companions = sorted(
        entry
        for entry in os.listdir(db_dir)
        if entry.startswith(name + ".")
        and entry != core.manifest_name(name)
        and os.path.isfile(os.path.join(db_dir, entry))
    )
    plan = [(backup["path"], base + name + data_suffix(backup["format"]), is_dir)]
    plan.extend((os.path.join(db_dir, entry), base + entry + ".age", False) for entry in companions)
    plan.append((backup["manifest_path"], base + core.manifest_name(name) + ".age", False))
    uploaded = []
    sent_bytes = 0
    try:
        for source, key, source_is_dir in plan:
            work = os.path.join(work_dir, f".{os.path.basename(key)}{WORK_SUFFIX}")
            try:
                encrypt(params, source, work, source_is_dir)
                sha, _size = _sha256_file(work)
                try:
                    sent = client.put_file(key, work, metadata={META_SHA256: sha})
                    uploaded.append(key)
                    if sent["sha256"] != sha:
                        raise OffsiteError(f"{key}: the file changed while it was uploaded")
                    client.verify_object(key, sent)
                    if params["verify"] == "download":
                        got, got_size = download_hash(client, key)
                        if got != sha or got_size != sent["size"]:
                            raise OffsiteError(f"verification of {key} failed: re-downloaded sha256 {got} is not {sha}")
                except S3Error as exc:
                    raise OffsiteError(f"upload of {name} to {params['bucket']}/{key} failed: {exc}") from None
                sent_bytes += sent["size"]
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(work)
    except BaseException:
        for key in reversed(uploaded):
            with contextlib.suppress(S3Error):
                client.delete(key)
        raise
    return sent_bytes


def download_hash(client, key):
    digest = hashlib.sha256()
    size = [0]

    def sink(chunk):
        digest.update(chunk)
        size[0] += len(chunk)

    client.get(key, sink)
    return digest.hexdigest(), size[0]


def sync(params, check_mode=False, now=None):
    """Upload what the bucket lacks (local backups the remote policy keeps), then remote retention."""
    clock = time.monotonic()
    params = check_offsite_params(params, need="upload")
    policy = policy_of(params)
    db_dir = os.path.join(params["backup_dir"], params["database"])
    client = make_client(params)
    local = core.list_backups(db_dir, params["database"])
    remote = list_remote(client, params)
    remote_good = {item["name"] for item in remote if item["good"]}
    combined = {item["name"]: item for item in remote}
    for item in local:
        combined[item["name"]] = {**item, "good": True}
    wanted = backup_retention.select(
        list(combined.values()), policy, now=now, moment=lambda item: core.parse_timestamp(item["timestamp"])
    )
    to_upload = [item for item in local if item["name"] in wanted["keep"] and item["name"] not in remote_good]
    result = {
        "changed": False,
        "bucket": params["bucket"],
        "prefix": remote_dir(params),
        "uploaded": [item["name"] for item in to_upload],
        "uploaded_bytes": 0,
        "remote_deleted": [],
        "remote_kept": {},
    }
    if check_mode:
        # The bucket as the real run will list it: what is there now plus the complete uploads.
        after = [item for item in remote if item["name"] not in result["uploaded"]]
        after.extend({**item, "good": True} for item in to_upload)
        plan = _remote_plan(after, policy, now, protect=set(result["uploaded"]))
        result["remote_deleted"] = [item["name"] for item in plan["delete"]]
        result["remote_kept"] = plan["keep"]
        result["changed"] = bool(result["uploaded"] or result["remote_deleted"])
        return result
    with offsite_lock(db_dir):
        work = tempfile.mkdtemp(prefix=WORK_PREFIX, dir=db_dir)
        try:
            for item in to_upload:
                result["uploaded_bytes"] += upload_backup(client, params, item, work)
                result["changed"] = True
        finally:
            shutil.rmtree(work, ignore_errors=True)
        _apply_remote_retention(client, params, policy, now, result)
    result["duration"] = round(time.monotonic() - clock, 3)
    return result


@contextlib.contextmanager
def offsite_lock(db_dir):
    """One sync per database at a time (a lock file beside the backups' own); clears a killed sync's work dirs.

    Uses pg_backup_core's flock class on another file, so a sync never blocks a backup.
    """
    os.makedirs(db_dir, mode=0o700, exist_ok=True)
    lock = core.BackupLock(db_dir)
    lock.path = os.path.join(db_dir, LOCK_FILE)
    try:
        lock.__enter__()
    except core.PgBackupError:
        raise OffsiteError(f"another off-site sync of {db_dir} is running: try again later") from None
    try:
        for entry in os.listdir(db_dir):
            if entry.startswith(WORK_PREFIX):
                shutil.rmtree(os.path.join(db_dir, entry), ignore_errors=True)
        yield
    finally:
        lock.__exit__(None, None, None)


def _apply_remote_retention(client, params, policy, now, result):
    remote = list_remote(client, params)
    missing = [name for name in result["uploaded"] if name not in {r["name"] for r in remote if r["good"]}]
    if missing:
        raise OffsiteError(f"uploaded backups {', '.join(missing)} are not listed as complete in the bucket")
    plan = _remote_plan(remote, policy, now, protect=set(result["uploaded"]))
    for item in plan["delete"]:
        for key in object_keys(item):
            try:
                client.delete(key)
            except S3Error as exc:
                raise OffsiteError(f"remote retention could not delete {key}: {exc}") from None
        result["remote_deleted"].append(item["name"])
        result["changed"] = True
    result["remote_kept"] = plan["keep"]
    result["remote_count"] = sum(1 for item in remote if item["good"]) - len(result["remote_deleted"])


def _remote_plan(remote, policy, now, protect):
    return backup_retention.select(
        remote, policy, now=now, protect=protect, moment=lambda item: core.parse_timestamp(item["timestamp"])
    )


# --------------------------------------------------------------------------- download


def fetch_backup(params, source, dest_dir):
    """Download, decrypt and verify a remote backup into ``dest_dir``; change nothing else.

    ``source``: ``latest`` (newest complete remote backup) or a backup name. Returns
    ``(path, manifest)`` of the verified plaintext copy; raises OffsiteError before any restore.
    """
    params = check_offsite_params(params, need="download")
    if not os.path.isfile(params["identity_file"]):
        raise OffsiteError(f"identity_file {params['identity_file']} does not exist")
    client = make_client(params)
    remote = [item for item in list_remote(client, params) if item["good"]]
    if not remote:
        raise OffsiteError(
            f"no complete off-site backup of {params['database']} in {params['bucket']}/{remote_dir(params)}"
        )
    if source == "latest":
        chosen = remote[0]
    else:
        chosen = next((item for item in remote if item["name"] == source), None)
        if chosen is None:
            raise OffsiteError(
                f"off-site backup {source!r} is not in {params['bucket']}/{remote_dir(params)} "
                f"(newest: {remote[0]['name']})"
            )
    name = chosen["name"]
    manifest_path = os.path.join(dest_dir, core.manifest_name(name))
    _download_decrypt(client, params, chosen["manifest"], manifest_path, dest_dir)
    manifest = core.read_manifest(manifest_path)
    if manifest is None or manifest.get("name") != name:
        raise OffsiteError(f"off-site manifest of {name} does not describe {name}: refusing")
    path = os.path.join(dest_dir, name)
    if chosen["format"] == "directory":
        tar_path = os.path.join(dest_dir, f".{name}.tar")
        _download_decrypt(client, params, chosen["data"], tar_path, dest_dir)
        try:
            safe_extract(tar_path, dest_dir, name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tar_path)
    else:
        _download_decrypt(client, params, chosen["data"], path, dest_dir)
    for key in chosen["companions"]:
        plain = os.path.basename(key)[: -len(".age")]
        _download_decrypt(client, params, key, os.path.join(dest_dir, plain), dest_dir)
    try:
        core.verify_against_manifest(path, manifest)
    except core.PgBackupError as exc:
        raise OffsiteError(f"off-site backup {name} failed verification after decryption: {exc}") from None
    return path, manifest


@contextlib.contextmanager
def fetched(params, source="latest", work_root=None, identity=None):
    """Context manager: a verified plaintext copy of a remote backup in a private temporary directory.

    ``identity``: the age identity text (vaulted); it is written to a 0600 file in that directory and
    given to age by path. Yields ``(path, manifest)``; everything is removed on exit.
    """
    if work_root and not os.path.isdir(work_root):
        raise OffsiteError(f"download directory {work_root} does not exist: create it or choose another")
    work = tempfile.mkdtemp(prefix=".offsite-restore-", dir=work_root)
    try:
        params = dict(params)
        if identity:
            key_path = os.path.join(work, ".identity")
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(identity.strip() + "\n")
            params["identity_file"] = key_path
        yield fetch_backup(params, source, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _download_decrypt(client, params, key, out_path, dest_dir):
    cipher = os.path.join(dest_dir, f".{os.path.basename(key)}{WORK_SUFFIX}")
    digest = hashlib.sha256()
    try:
        with open(cipher, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)

            def sink(chunk):
                digest.update(chunk)
                handle.write(chunk)

            try:
                headers = client.get(key, sink)
            except S3Error as exc:
                raise OffsiteError(f"download of {params['bucket']}/{key} failed: {exc}") from None
        stored = headers.get(f"x-amz-meta-{META_SHA256}")
        if stored != digest.hexdigest():
            raise OffsiteError(
                f"{params['bucket']}/{key} is damaged or was tampered with: sha256 {digest.hexdigest()} "
                f"is not the {stored} recorded at upload; refusing"
            )
        decrypt_file(params, cipher, out_path, f"decrypting {params['bucket']}/{key}")
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(cipher)


# --------------------------------------------------------------------------- state and metrics


def state_path(params):
    return os.path.join(params["backup_dir"], params["database"], STATE_FILE)


def read_state(params):
    return core.read_manifest(state_path(params)) or {}


def record_run(params, success, result=None, error=None, now=None):
    """Remember the outcome for the metrics (written later by ExecStopPost as root)."""
    state = read_state(params)
    moment = (now or core.utc_now()).timestamp()
    state["last_run_timestamp_seconds"] = moment
    state["last_run_success"] = 1 if success else 0
    state["error"] = None if success else str(error)
    if success:
        state["last_success_timestamp_seconds"] = moment
        state["last_duration_seconds"] = (result or {}).get("duration", 0)
        state["last_uploaded_bytes"] = (result or {}).get("uploaded_bytes", 0)
        state["remote_count"] = (result or {}).get("remote_count", 0)
    final = state_path(params)
    tmp = final + ".tmp"
    core.write_json_file(tmp, state)
    os.replace(tmp, final)
    return state


def render_metrics(database, state):
    labels = f'{{database="{core.escape_label_value(database)}"}}'
    lines = []
    for key, help_text in METRIC_HELP.items():
        value = state.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        name = f"{METRICS_PREFIX}_{key}"
        lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name}{labels} {value!r}"])
    return "\n".join(lines) + "\n"


def write_metrics(metrics_dir, params):
    """Write ``<metrics_dir>/stackops_pg_backup_offsite_<database>.prom`` atomically from the state file."""
    name = f"{METRICS_PREFIX}_{params['database']}.prom"
    text = render_metrics(params["database"], read_state(params))
    os.makedirs(metrics_dir, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=metrics_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), 0o644)
        os.replace(tmp, os.path.join(metrics_dir, name))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return os.path.join(metrics_dir, name)


def run_sync(params, check_mode=False):
    """sync() plus the state file the metrics are written from; re-raises a failure after recording it."""
    if check_mode:
        return sync(params, check_mode=True)
    checked = check_offsite_params(params, need="upload")
    try:
        result = sync(params)
    except (core.PgBackupError, OSError) as exc:
        with contextlib.suppress(OSError):  # the sync's own error is the one to report
            record_run(checked, False, error=exc)
        raise
    record_run(checked, True, result)
    return result


# --------------------------------------------------------------------------- script entry point


def main(argv=None):
    parser = argparse.ArgumentParser(description="Encrypted off-site copy of stackops pg_backup backups.")
    parser.add_argument("--config", required=True, help="JSON file with the off-site option names")
    parser.add_argument("--check", action="store_true", help="only report what would be uploaded and deleted")
    parser.add_argument("--write-metrics", metavar="DIR", help="no sync: write the off-site metrics file into DIR")
    args = parser.parse_args(argv)
    # systemd stops with SIGTERM: unwind through the cleanup paths (partial uploads are deleted).
    signal.signal(signal.SIGTERM, core._terminate)
    try:
        with open(args.config, encoding="utf-8") as handle:
            params = json.load(handle)
        if not isinstance(params, dict):
            raise OffsiteError(f"config {args.config} must hold a JSON object of off-site options")
        if args.write_metrics is not None:
            checked = check_offsite_params(params)
            result = {"metrics_path": write_metrics(args.write_metrics, checked)}
        else:
            result = run_sync(params, check_mode=args.check)
    except (OSError, ValueError, core.PgBackupError) as exc:
        sys.stderr.write(f"pg_backup offsite: {exc}\n")
        return 1
    sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
