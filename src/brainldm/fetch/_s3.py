"""Anonymous S3: list what a bucket holds, and download one object with resume and ETag check."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from brainldm.fetch._common import (
    ETagHasher,
    FetchError,
    Transfer,
    chunk_size,
    part_path,
    read_chunks,
    refuse,
    write_stream,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteObject:
    """Size and ETag (without quotes) of one object, as the bucket listed it."""

    key: str
    size: int
    etag: str


def s3_client(endpoint_url: str | None = None, region: str = "us-east-1", workers: int = 8):
    """An unsigned (anonymous) boto3 S3 client.

    Parameters
    ----------
    endpoint_url : str, optional
        Another S3 endpoint. When None, boto3 reads ``AWS_ENDPOINT_URL_S3`` or
        ``AWS_ENDPOINT_URL`` itself, else uses AWS.
    region : str
    workers : int
        Connection pool size (one connection per download thread).
    """
    try:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config
    except ImportError:
        raise ImportError(
            "fetching NSD needs boto3: pip install 'brainldm[fetch]'"
        ) from None
    config = Config(signature_version=UNSIGNED, max_pool_connections=max(10, workers),
                    retries={"max_attempts": 5, "mode": "standard"})  # fmt: skip
    return boto3.client("s3", region_name=region, endpoint_url=endpoint_url, config=config)


def list_objects(client, bucket: str, keys: Iterable[str]) -> dict[str, RemoteObject]:
    """Size and ETag of those of ``keys`` the bucket holds, one listing per folder."""
    keys = set(keys)
    folders = sorted({k.rpartition("/")[0] for k in keys})
    found: dict[str, RemoteObject] = {}
    paginator = client.get_paginator("list_objects_v2")
    for folder in folders:
        prefix = f"{folder}/" if folder else ""
        try:
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
                for entry in page.get("Contents", []):
                    if entry["Key"] in keys:
                        found[entry["Key"]] = RemoteObject(
                            entry["Key"], int(entry["Size"]), entry["ETag"].strip('"')
                        )
        except Exception as err:  # noqa: BLE001 (botocore raises many kinds)
            raise FetchError(f"could not list s3://{bucket}/{prefix}: {err}") from err
    return found


def multipart_part_size(client, bucket: str, obj: RemoteObject) -> int | None:
    """Part size of a multipart upload (the size of part 1); None if the server will not say."""
    try:
        head = client.head_object(Bucket=bucket, Key=obj.key, PartNumber=1)
    except Exception as err:  # noqa: BLE001 (any failure: fall back to checking size only)
        logger.info("no part size for %s (%s); checking size only", obj.key, err)
        return None
    size = int(head.get("ContentLength", 0))
    n_parts = int(obj.etag.rpartition("-")[2])
    # Equal parts but the last (what S3 clients upload): n parts of this size cover the
    # object, and the last part is the rest. Anything else: check the size only.
    if size <= 0 or not (n_parts - 1) * size < obj.size <= n_parts * size:
        return None
    if n_parts > 1:
        try:
            last = client.head_object(Bucket=bucket, Key=obj.key, PartNumber=n_parts)
        except Exception:  # noqa: BLE001
            return None
        if int(last.get("ContentLength", -1)) != obj.size - (n_parts - 1) * size:
            return None
    return size


def download_object(
    client,
    bucket: str,
    obj: RemoteObject,
    path: Path,
    *,
    progress: Callable[[int], None],
    limit_rate: float | None = None,
    describe: str = "",
    cancel=None,
) -> Transfer:
    """Download one object to ``path`` through ``path.part``, resuming, then verify and rename.

    A ``.part`` left by an interrupted call is kept and the rest requested with
    ``Range``. The result must have the listed size and ETag: a single-part ETag
    is the MD5 of the content; a multipart one (``md5-of-md5s-N``) is recomputed
    with the part size the server gives for part 1, and when it gives none only
    the size is checked. A file failing a check is removed, never renamed.

    Parameters
    ----------
    client : boto3 S3 client
    bucket : str
    obj : RemoteObject
        As listed (size and ETag to expect).
    path : Path
        Final path.
    progress : callable
        Called with the number of bytes after each chunk.
    limit_rate : float, optional
        Maximum bytes per second of this transfer.
    describe : str
        Appended to error messages (which download the file belongs to).
    cancel : threading.Event, optional
        When set, the transfer stops at the next chunk (the ``.part`` is kept).

    Returns
    -------
    Transfer
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(path)
    have = part.stat().st_size if part.exists() else 0
    if have > obj.size:  # not a prefix of this object: start again
        part.unlink()
        have = 0
    if "-" in obj.etag:
        part_size = multipart_part_size(client, bucket, obj)
        method = "multipart md5" if part_size else "size only (multipart ETag, part size unknown)"
    else:
        part_size, method = None, "md5"
    hasher = ETagHasher(part_size)
    for data in read_chunks(part) if have else ():
        hasher.update(data)
    written = 0
    if have < obj.size:
        try:
            response = client.get_object(Bucket=bucket, Key=obj.key, Range=f"bytes={have}-")
        except Exception as err:  # noqa: BLE001 (botocore raises many kinds)
            raise FetchError(
                f"could not download s3://{bucket}/{obj.key}: {err}{describe}"
            ) from err
        if int(response["ContentLength"]) != obj.size - have:
            raise FetchError(
                f"s3://{bucket}/{obj.key}: the server sent {response['ContentLength']} bytes "
                f"from byte {have}, expected {obj.size - have}; the object changed since it "
                f"was listed{describe}."
            )
        chunks = response["Body"].iter_chunks(chunk_size(limit_rate))
        written = write_stream(chunks, part, update=hasher.update,
                               progress=progress, limit_rate=limit_rate, cancel=cancel)  # fmt: skip
    elif not part.exists():
        part.touch()  # an empty object
    size = part.stat().st_size
    if size != obj.size:
        raise refuse(part, f"{path}: {size} bytes downloaded, but s3://{bucket}/{obj.key} "
                     f"has {obj.size}{describe}.")  # fmt: skip
    if method != "md5" and part_size is None:
        logger.warning("%s: multipart ETag and no part size; verified its size only", path)
    else:
        etag = hasher.hexdigest()
        if etag != obj.etag:
            raise refuse(part, f"{path} is corrupt: its ETag ({method}) is {etag}, but "
                         f"s3://{bucket}/{obj.key} lists {obj.etag}{describe}.")  # fmt: skip
    os.replace(part, path)
    return Transfer(path, size, written, have, method)
