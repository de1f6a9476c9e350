# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Settings of the off-site copies: option names and checks, S3 credentials, the client, the remote policy.

Standard library only. Shared by the sync (backup_offsite), the restore side (backup_offsite_fetch) and the
modules' ``offsite`` option.
"""

from __future__ import annotations

import json

from ansible_collections.stackops.platform.plugins.module_utils import backup_retention
from ansible_collections.stackops.platform.plugins.module_utils import pg_backup_manifest as core
from ansible_collections.stackops.platform.plugins.module_utils.backup_s3 import S3Client, S3Error
from ansible_collections.stackops.platform.plugins.module_utils.pg_client import normalize_params

VERIFY_MODES = ("head", "download")

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
    result = normalize_params(params, OFFSITE_OPTIONS, error=OffsiteError, what="off-site ")
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
