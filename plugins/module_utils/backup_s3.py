# Copyright: stackops platform contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small S3 client on the standard library (AWS Signature Version 4), for the off-site backup copies.

Why not boto3: the backup timer runs the installed files with the system python inside a hardened
unit; a stdlib client needs no package on the database host, cannot drift with Debian's boto3, and
the off-site copy needs only seven calls (PUT, HEAD, GET, DELETE, ListObjectsV2 and multipart
create/upload/complete/abort). Works with AWS S3 and S3-compatible servers (MinIO, Ceph, moto) in
path-style (default) or virtual-hosted addressing.

Every request signs the SHA-256 of its payload and sends Content-MD5, so the server refuses a body
damaged in transit; ``verify_object`` then compares size, the ETag (MD5, or MD5 of part MD5s) and the
sha256 stored in the object's metadata with what was sent.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import hmac
import http.client
import os
import re
import ssl
import time
import urllib.parse
import xml.etree.ElementTree as ET

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
READ_CHUNK = 1024 * 1024
META_SHA256 = "sha256"


class S3Error(Exception):
    """An S3 request failed; ``status`` is the HTTP status (None when the endpoint was not reached)."""

    def __init__(self, message, status=None, code=None):
        super().__init__(message)
        self.status = status
        self.code = code


def _quote(text, safe="-_.~"):
    return urllib.parse.quote(text, safe=safe)


def _hmac(key, text):
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret_key, date, region, service="s3"):
    key = _hmac(("AWS4" + secret_key).encode("utf-8"), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def sign_request(method, host, path, *, query, headers, payload_sha256, credentials, region, now):
    """Return the headers to send (with Authorization) for a SigV4 request; pure, for tests."""
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    headers = {key.lower(): str(value).strip() for key, value in headers.items()}
    headers["host"] = host
    headers["x-amz-date"] = amz_date
    headers["x-amz-content-sha256"] = payload_sha256
    if credentials.get("session_token"):
        headers["x-amz-security-token"] = credentials["session_token"]
    signed = sorted(headers)
    canonical_query = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(query.items()))
    canonical = "\n".join(
        [
            method,
            path,
            canonical_query,
            "".join(f"{name}:{headers[name]}\n" for name in signed),
            ";".join(signed),
            payload_sha256,
        ]
    )
    scope = f"{date}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    signature = hmac.new(
        signing_key(credentials["secret_key"], date, region), to_sign.encode("utf-8"), hashlib.sha256
    ).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials['access_key']}/{scope}, "
        f"SignedHeaders={';'.join(signed)}, Signature={signature}"
    )
    return headers


def multipart_etag(part_md5s):
    """The ETag S3 gives a multipart object: MD5 of the concatenated part MD5s, dash, part count."""
    joined = hashlib.md5(b"".join(part_md5s), usedforsecurity=False).hexdigest()
    return f"{joined}-{len(part_md5s)}"


class S3Client:
    """One bucket on one endpoint. Keys are plain strings; the client encodes them."""

    def __init__(
        self,
        endpoint,
        region,
        bucket,
        credentials,
        *,
        addressing_style="path",
        ca_file=None,
        timeout=60,
        attempts=3,
        part_size=64 * 1024 * 1024,
    ):
        parsed = urllib.parse.urlsplit(endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise S3Error(f"endpoint {endpoint!r} must be an http:// or https:// URL")
        self.endpoint = endpoint
        self.scheme = parsed.scheme
        self.netloc = parsed.netloc
        self.region = region
        self.bucket = bucket
        self.credentials = credentials
        self.addressing_style = addressing_style
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.part_size = part_size
        self.context = ssl.create_default_context(cafile=ca_file) if self.scheme == "https" else None

    # ------------------------------------------------------------------ transport

    def _target(self, key):
        encoded = _quote(key, safe="-_.~/") if key else ""
        if self.addressing_style == "virtual":
            return f"{self.bucket}.{self.netloc}", "/" + encoded
        return self.netloc, f"/{_quote(self.bucket)}/{encoded}" if key else f"/{_quote(self.bucket)}"

    def _connection(self, host):
        if self.scheme == "https":
            return http.client.HTTPSConnection(host, timeout=self.timeout, context=self.context)
        return http.client.HTTPConnection(host, timeout=self.timeout)

    def request(self, method, key="", *, query=None, headers=None, body=b"", sink=None, expect=(200,)):
        """Send one signed request; retry transport errors and 5xx. Returns (status, headers, body)."""
        query = query or {}
        host, path = self._target(key)
        payload_sha = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        extra = dict(headers or {})
        if body:
            extra["Content-MD5"] = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
        url = path + ("?" + "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(query.items())) if query else "")
        what = f"S3 {method} {self.endpoint}/{self.bucket}/{key}"
        last = None
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(min(0.5 * 2**attempt, 8))
            now = datetime.datetime.now(datetime.UTC)
            signed = sign_request(
                method,
                host,
                path,
                query=query,
                headers=extra,
                payload_sha256=payload_sha,
                credentials=self.credentials,
                region=self.region,
                now=now,
            )
            signed["content-length"] = str(len(body))
            conn = self._connection(host)
            try:
                conn.request(method, url, body=body or None, headers=signed)
                response = conn.getresponse()
                status = response.status
                reply_headers = {k.lower(): v for k, v in response.getheaders()}
                if sink is not None and status in expect:
                    while True:
                        chunk = response.read(READ_CHUNK)
                        if not chunk:
                            break
                        sink(chunk)
                    data = b""
                else:
                    data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
                last = S3Error(f"cannot reach S3 endpoint {self.endpoint} ({what}): {reason}")
                continue
            finally:
                conn.close()
            if status in expect:
                return status, reply_headers, data
            code, message = _error_fields(data)
            last = S3Error(f"{what} failed: HTTP {status} {code or ''} {message or ''}".strip(), status, code)
            if status < 500 or sink is not None:
                break
        raise last

    # ------------------------------------------------------------------ objects

    def head(self, key):
        """Headers of an object, or None when it does not exist."""
        try:
            _status, headers, _data = self.request("HEAD", key)
        except S3Error as exc:
            if exc.status == 404:
                return None
            raise
        return headers

    def delete(self, key):
        self.request("DELETE", key, expect=(200, 204))

    def get(self, key, sink):
        """Stream an object's bytes into ``sink``; returns its headers."""
        _status, headers, _data = self.request("GET", key, sink=sink)
        return headers

    def list(self, prefix):
        """Keys and sizes under ``prefix`` (ListObjectsV2, every page)."""
        objects = []
        token = None
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if token:
                query["continuation-token"] = token
            _status, _headers, data = self.request("GET", "", query=query)
            root = _parse_xml(data, "ListObjectsV2")
            for item in root.iter(S3_NS + "Contents"):
                objects.append({"key": item.findtext(S3_NS + "Key"), "size": int(item.findtext(S3_NS + "Size") or 0)})
            if root.findtext(S3_NS + "IsTruncated") != "true":
                return objects
            token = root.findtext(S3_NS + "NextContinuationToken")

    def put_file(self, key, path, metadata=None):
        """Upload a file (one PUT up to part_size, else multipart); returns {size, sha256, etag}."""
        size = os.path.getsize(path)
        headers = {f"x-amz-meta-{name}": value for name, value in (metadata or {}).items()}
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            if size <= self.part_size:
                body = handle.read()
                digest.update(body)
                _status, reply, _data = self.request("PUT", key, headers=headers, body=body)
                expected = hashlib.md5(body, usedforsecurity=False).hexdigest()
            else:
                expected, reply = self._multipart(key, handle, headers, digest)
        return {"size": size, "sha256": digest.hexdigest(), "etag": expected, "reply_etag": reply.get("etag")}

    def _multipart(self, key, handle, headers, digest):
        _status, _reply, data = self.request("POST", key, query={"uploads": ""}, headers=headers)
        upload_id = _parse_xml(data, "CreateMultipartUpload").findtext(S3_NS + "UploadId")
        if not upload_id:
            raise S3Error(f"S3 CreateMultipartUpload for {key} returned no UploadId")
        md5s = []
        parts = []
        try:
            while True:
                body = handle.read(self.part_size)
                if not body:
                    break
                digest.update(body)
                md5s.append(hashlib.md5(body, usedforsecurity=False).digest())
                number = len(md5s)
                _s, reply, _d = self.request(
                    "PUT", key, query={"partNumber": str(number), "uploadId": upload_id}, body=body
                )
                parts.append((number, reply.get("etag", "")))
            xml = (
                "<CompleteMultipartUpload>"
                + "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>" for n, etag in parts)
                + "</CompleteMultipartUpload>"
            )
            _s, reply, data = self.request("POST", key, query={"uploadId": upload_id}, body=xml.encode())
            # A 200 reply can still carry an <Error> (S3 documents this for CompleteMultipartUpload).
            if b"<Error>" in data:
                code, message = _error_fields(data)
                raise S3Error(f"S3 CompleteMultipartUpload for {key} failed: {code} {message}")
        except BaseException:
            with contextlib.suppress(S3Error):
                self.request("DELETE", key, query={"uploadId": upload_id}, expect=(200, 204))
            raise
        return multipart_etag(md5s), reply

    def verify_object(self, key, sent):
        """Compare an uploaded object with what was sent (``put_file``'s result); raise on a difference."""
        headers = self.head(key)
        if headers is None:
            raise S3Error(f"verification of {key} failed: the object is not in bucket {self.bucket} after upload")
        size = int(headers.get("content-length", -1))
        if size != sent["size"]:
            raise S3Error(f"verification of {key} failed: bucket holds {size} bytes, {sent['size']} were sent")
        stored = headers.get(f"x-amz-meta-{META_SHA256}")
        if stored != sent["sha256"]:
            raise S3Error(f"verification of {key} failed: stored sha256 {stored} is not {sent['sha256']}")
        etag = (headers.get("etag") or "").strip('"')
        # An MD5-shaped ETag is computed by the server from the bytes it stored: compare it. Other
        # shapes (SSE-KMS, some gateways) carry no digest; verify=download covers those.
        if re.fullmatch(r"[0-9a-f]{32}(-\d+)?", etag) and etag != sent["etag"]:
            raise S3Error(f"verification of {key} failed: server ETag {etag} is not {sent['etag']}")
        return headers


def _parse_xml(data, what):
    try:
        return ET.fromstring(data)  # noqa: S314 - replies of the configured endpoint
    except ET.ParseError as exc:
        raise S3Error(f"S3 {what} returned a reply that is not XML: {exc}") from None


def _error_fields(data):
    if not data:
        return None, None
    try:
        root = ET.fromstring(data)  # noqa: S314 - replies of the configured endpoint
    except ET.ParseError:
        return None, data[:200].decode("utf-8", "replace")
    return root.findtext("Code"), root.findtext("Message")
