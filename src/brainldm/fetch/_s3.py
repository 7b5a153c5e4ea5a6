"""Anonymous S3: list what a bucket holds, and download one object with resume and ETag check."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from brainldm.fetch._common import (
    ATTEMPTS,
    ETagHasher,
    FetchError,
    Transfer,
    chunk_size,
    drop_part,
    part_info_path,
    part_path,
    read_chunks,
    read_part_info,
    refuse,
    retry_wait,
    write_part_info,
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
    try:
        n_parts = int(obj.etag.rpartition("-")[2])
    except ValueError:  # not an AWS multipart ETag (another S3 server): size only
        logger.warning("s3://%s/%s: ETag %r is neither an MD5 nor an AWS multipart ETag; "
                       "checking its size only", bucket, obj.key, obj.etag)  # fmt: skip
        return None
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
    from botocore.exceptions import BotoCoreError, ClientError
    from urllib3.exceptions import HTTPError as Urllib3Error

    dropped = (BotoCoreError, Urllib3Error, OSError)  # mid-transfer: retried with Range
    where = f"s3://{bucket}/{obj.key}"
    path.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(path)
    info = read_part_info(path)
    if part.exists() and info is not None and \
            (info.get("etag"), info.get("size")) != (obj.etag, obj.size):
        logger.warning("%s: the .part is of an older version of %s; starting again",
                       path, where)  # fmt: skip
        drop_part(path)
    if "-" in obj.etag:
        part_size = multipart_part_size(client, bucket, obj)
        method = "multipart md5" if part_size else "size only (multipart ETag, part size unknown)"
    else:
        part_size, method = None, "md5"
    resumed_from: int | None = None
    written = 0
    try:
        for attempt in range(1, ATTEMPTS + 1):
            have = part.stat().st_size if part.exists() else 0
            if have > obj.size:  # not a prefix of this object: start again
                drop_part(path)
                have = 0
            resumed_from = have if resumed_from is None else resumed_from
            hasher = ETagHasher(part_size)
            for data in read_chunks(part) if have else ():
                hasher.update(data)
            if have >= obj.size:
                if not part.exists():
                    part.touch()  # an empty object
                break
            try:  # If-Match: only the version listed (and whose first bytes the .part holds)
                response = client.get_object(Bucket=bucket, Key=obj.key, Range=f"bytes={have}-",
                                             IfMatch=f'"{obj.etag}"')  # fmt: skip
            except ClientError as err:
                error = err.response.get("Error", {})
                status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if error.get("Code") == "PreconditionFailed" or status == 412:
                    drop_part(path)
                    raise FetchError(
                        f"{where} changed since it was listed (its ETag is no longer {obj.etag}); "
                        f"the partial download was removed: run the command again{describe}."
                    ) from err
                raise FetchError(f"could not download {where}: {err}{describe}") from err
            except dropped as err:
                reason = f"{type(err).__name__}: {err}"
            except Exception as err:  # noqa: BLE001 (botocore raises many kinds)
                raise FetchError(f"could not download {where}: {err}{describe}") from err
            else:
                length = int(response["ContentLength"])
                if have and length == obj.size:  # the server ignored Range: take it all
                    logger.warning("%s: the server ignored Range; downloading from the start",
                                   where)  # fmt: skip
                    drop_part(path)
                    have, hasher, resumed_from = 0, ETagHasher(part_size), 0
                elif length != obj.size - have:
                    response["Body"].close()
                    drop_part(path)
                    raise FetchError(
                        f"{where}: the server sent {length} bytes from byte {have}, expected "
                        f"{obj.size - have}; the object changed since it was listed, or the server "
                        "does not honour Range. The partial download was removed; run the command "
                        f"again{describe}."
                    )
                if not have:  # which version the .part holds, for a later resume
                    write_part_info(path, {"key": obj.key, "etag": obj.etag, "size": obj.size})
                chunks = response["Body"].iter_chunks(chunk_size(limit_rate))
                try:
                    written += write_stream(chunks, part, update=hasher.update, progress=progress,
                                            limit_rate=limit_rate, cancel=cancel)  # fmt: skip
                except dropped as err:
                    reason = f"{type(err).__name__}: {err}"
                else:
                    if part.exists() and part.stat().st_size >= obj.size:
                        break
                    reason = "the connection closed early"
            if attempt < ATTEMPTS and retry_wait(attempt, cancel):
                logger.info("%s: %s; retrying with Range (%d of %d)", where, reason, attempt + 1,
                            ATTEMPTS)  # fmt: skip
                continue
            raise FetchError(f"{path}: the download of {where} failed {attempt} time(s) "
                             f"({reason}); "
                             f"the partial download is kept: run the command again to resume"
                             f"{describe}.")  # fmt: skip
    except BaseException:
        if not part.exists():  # no bytes kept: no record of them either
            part_info_path(path).unlink(missing_ok=True)
        raise
    have = resumed_from or 0
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
    drop_part(path)  # the record beside the .part
    return Transfer(path, size, written, have, method, part_size)
