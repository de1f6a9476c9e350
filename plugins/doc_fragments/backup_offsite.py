# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The off-site bucket shared by pg_backup (upload) and pg_restore (download).
    DOCUMENTATION = r"""
options:
  offsite:
    description:
      - Encrypted off-site copies in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, ...).
      - Every object is encrypted on the host with C(age) before it leaves; the bucket never holds plaintext.
      - Objects are C(<prefix>/<database>/<name>.age) (C(.tar.age) for the directory format), files named
        C(<name>.*) beside the backup (for example its globals) and C(<name>.manifest.json.age), uploaded last.
    type: dict
    suboptions:
      endpoint:
        description: URL of the S3 endpoint, for example V(https://s3.eu-central-1.amazonaws.com).
        type: str
        required: true
      region:
        description: Region used in the request signature (SigV4).
        type: str
        default: us-east-1
      bucket:
        description: Existing bucket that receives the encrypted copies.
        type: str
        required: true
      prefix:
        description: Key prefix inside the bucket; one folder per database goes below it.
        type: str
        default: ""
      addressing_style:
        description: V(path) (C(endpoint/bucket/key), works everywhere) or V(virtual) (C(bucket.endpoint/key)).
        type: str
        choices: [path, virtual]
        default: path
      ca_file:
        description: PEM bundle to verify an https endpoint with, instead of the system store.
        type: path
      access_key:
        description: S3 access key id. Vault it. Or use O(offsite.credentials_file).
        type: str
      secret_key:
        description: S3 secret access key. Vault it; never logged.
        type: str
      session_token:
        description: Session token of temporary credentials.
        type: str
      credentials_file:
        description: JSON file with C(access_key), C(secret_key) and optionally C(session_token) (mode 0600/0640).
        type: path
      recipients:
        description:
          - age public keys (C(age1...)) the copies are encrypted to. Required to upload.
          - Keep the matching identities off the database host (vaulted); they are needed only to restore.
        type: list
        elements: str
      age_path:
        description: Path of the C(age) program (Debian package C(age)). Default C(age) on PATH.
        type: path
      verify:
        description:
          - V(head) compares size, the server's MD5 ETag and the stored sha256 with what was sent.
          - V(download) also downloads every object again and compares its sha256.
        type: str
        choices: [head, download]
        default: head
      part_size_mb:
        description: Objects larger than this are sent as a multipart upload in parts of this size (MiB, 5 or more).
        type: int
        default: 64
      timeout:
        description: Seconds to wait for the endpoint on each request.
        type: int
        default: 60
      attempts:
        description: Tries per request when the endpoint cannot be reached or answers 5xx.
        type: int
        default: 3
      keep_last:
        description:
          - Remote retention (M(stackops.platform.pg_backup) only), the same rules as its local C(keep_*) options
            applied to the bucket, each unset rule off; the newest complete copy always stays.
          - Keep the N newest copies.
        type: int
      keep_days:
        description: Remote retention, copies younger than N days.
        type: int
      keep_daily:
        description: Remote retention, the newest copy of each of the last N UTC days that have one.
        type: int
      keep_weekly:
        description: Remote retention, the newest copy of each of the last N ISO weeks that have one.
        type: int
      keep_monthly:
        description: Remote retention, the newest copy of each of the last N calendar months that have one.
        type: int
"""
