"""A real S3 API on loopback for the tests: moto's standalone server, reached by boto3 over HTTP
exactly as the studio reaches AWS, MinIO, R2 or Backblaze (avatarsite/s3.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from avatarsite.s3 import s3_storage

BUCKET = "studio-test"
PREFIX = "media"
CREDENTIALS = {"key_id": "test-key-id", "secret": "test-secret"}


class S3Server:
    """moto's ThreadedMotoServer on 127.0.0.1; stop() and start() again keep the port."""

    def __init__(self) -> None:
        self.port = 0
        self._server: Any = None

    def start(self) -> S3Server:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        self.port = self._server.get_host_and_port()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=CREDENTIALS["key_id"],
            aws_secret_access_key=CREDENTIALS["secret"],
        )

    def make_bucket(self) -> None:
        """An empty bucket. moto keeps its state per process, not per server: reset it first
        (its own HTTP API), so no test sees another's objects."""
        import requests

        requests.post(f"{self.endpoint}/moto-api/reset", timeout=10).raise_for_status()
        self.client().create_bucket(Bucket=BUCKET)

    def object_keys(self) -> list[str]:
        listing = self.client().list_objects_v2(Bucket=BUCKET)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def storage(self) -> dict[str, Any]:
        """STORAGES["default"] as STORAGE_URL=s3://studio-test/media configures it."""
        return s3_storage(
            bucket=BUCKET,
            prefix=PREFIX,
            endpoint=self.endpoint,
            region="us-east-1",
            addressing="path",
            link_seconds=300,
            **CREDENTIALS,
        )


def s3_server() -> Iterator[S3Server]:
    """Start the server (skipping with a message where it cannot), give it a bucket, stop it."""
    server = S3Server()
    try:
        server.start()
        server.make_bucket()
    except Exception as exc:  # moto missing or the port refused: not this code's failure
        server.stop()
        pytest.skip(f"moto's S3 server could not start here: {exc}")
    try:
        yield server
    finally:
        server.stop()
