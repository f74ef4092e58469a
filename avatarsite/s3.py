"""django-storages' S3 backend as STORAGE_URL configures it (settings.py), in one place so the
tests run against exactly the configuration a deployment gets."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from boto3.s3.transfer import TransferConfig
from botocore.config import Config

# Uploads into the bucket in bounded memory (issue 14: a 200 MB result with under 50 MB of a
# worker's RSS). boto3 reads every part of a multipart upload from the file into memory and by
# default reads up to 10 parts of 8 MiB ahead: 125 MB of RSS growth for a 200 MB Kling result
# (bench/bigresult.py). 3 parts of 5 MiB (S3's smallest part) in flight: about 35 MB, at the
# same speed on loopback. boto3 grows the part size itself past 10,000 parts (50 GB).
UPLOAD_PART_BYTES = 5 * 1024**2
UPLOAD_PARTS_IN_FLIGHT = 3


def transfer_config() -> TransferConfig:
    """boto3's managed-transfer settings: at most UPLOAD_PARTS_IN_FLIGHT parts in memory."""
    config = TransferConfig(
        multipart_threshold=UPLOAD_PART_BYTES,
        multipart_chunksize=UPLOAD_PART_BYTES,
        max_concurrency=UPLOAD_PARTS_IN_FLIGHT,
    )
    # Not a constructor argument of boto3's subclass, but read by s3transfer's manager: the
    # parts read ahead of the uploading threads (default 10) wait for one to finish instead.
    config.max_in_memory_upload_chunks = UPLOAD_PARTS_IN_FLIGHT
    return config


def s3_storage(
    *,
    bucket: str,
    prefix: str,
    endpoint: str,
    region: str,
    addressing: str,
    link_seconds: int,
    key_id: str = "",
    secret: str = "",
) -> dict[str, Any]:
    """The STORAGES["default"] entry for a bucket."""
    options: dict[str, Any] = {
        "bucket_name": bucket,
        "location": prefix,
        "endpoint_url": endpoint or None,
        "region_name": region or None,
        # Short timeouts and few retries: a stalled bucket fails a step (retried later) and
        # /healthz within seconds instead of holding a worker.
        "client_config": Config(
            signature_version="s3v4",
            s3={"addressing_style": addressing},
            connect_timeout=5,
            read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"},
        ),
        # Never overwrite: like local files, a taken name gets a suffix, so a worker that lost a
        # job's lease and deletes what it saved cannot delete the winner's result.
        "file_overwrite": False,
        "transfer_config": transfer_config(),
        "default_acl": None,  # private objects: reachable only through a presigned link
        "querystring_auth": True,
        "querystring_expire": link_seconds,
    }
    if key_id:
        options.update(access_key=key_id, secret_key=secret)
    return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}


def storage_origins(*, bucket: str, endpoint: str, region: str, addressing: str) -> list[str]:
    """Where browsers fetch presigned links from (the CSP's media-src and img-src)."""
    if endpoint:
        parts = urlsplit(endpoint)
        host = parts.netloc if addressing == "path" else f"{bucket}.{parts.netloc}"
        return [f"{parts.scheme}://{host}"]
    return [f"https://{bucket}.s3.amazonaws.com"] + (
        [f"https://{bucket}.s3.{region}.amazonaws.com"] if region else []
    )
