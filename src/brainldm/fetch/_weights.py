"""``fetch_weights``: Stable Diffusion and the evaluation networks, into the folders brainldm reads.

Names and places come from :data:`brainldm.evaluation.WEIGHT_FILES` /
:data:`~brainldm.evaluation.WEIGHT_URLS` (the networks) and from what
:func:`brainldm.ldm.load_ldm` needs of a diffusers folder (Stable Diffusion).
A run config then points ``features.model`` at ``<to>/stable-diffusion-v1-4``
and ``evaluation.weights_dir`` at ``<to>``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from brainldm.evaluation import (
    CLIP_WEIGHT_NAMES,
    WEIGHT_FILES,
    WEIGHT_URLS,
    torchvision_sha256_prefix,
)
from brainldm.fetch._common import (
    ByteProgress,
    FetchError,
    Transfer,
    differs_message,
    file_sha256,
    format_size,
    git_blob_sha1,
    part_path,
    run_parallel,
)

logger = logging.getLogger(__name__)

#: Per-folder record of each file's SHA-256, written at first download and checked after.
HASHES_FILE = "hashes.json"

#: Stable Diffusion v1.4 in the diffusers layout, as :func:`brainldm.ldm.load_ldm` reads it.
SD_NAME = "sd-v1-4"
SD_REPO = "CompVis/stable-diffusion-v1-4"
SD_FOLDER = "stable-diffusion-v1-4"
SD_FILES = (
    "model_index.json",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
)

#: The CLIP folder of the evaluation: the config and the weights brainldm loads first.
CLIP_FILES = ("config.json", CLIP_WEIGHT_NAMES[0])

#: Whole SHA-256 of files whose source states it. AlexNet: the Git LFS pointer of a Hub
#: mirror (blanchon/image-gs-models-utils, torch/checkpoints/alexnet-owt-7be5be79.pth),
#: which agrees with the 8 digits torchvision puts in the name. Other torchvision files:
#: only those digits are public; their whole hash is recorded at first download.
PINNED_SHA256: dict[str, str] = {
    "alexnet-owt-7be5be79.pth": "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
}

_HF_PREFIX = "https://huggingface.co/"


@dataclass(frozen=True)
class WeightFile:
    """One weight file to fetch.

    Attributes
    ----------
    name : str
        The ``--only`` item it belongs to.
    path : str
        Path relative to the weights folder.
    url : str or None
        Plain HTTPS source, or None for a Hugging Face file.
    repo_id, filename : str or None
        Hugging Face source.
    sha256_prefix : str or None
        Start of the SHA-256 pinned by the file's name (torchvision convention).
    sha256 : str or None
        Whole SHA-256 pinned in this package (:data:`PINNED_SHA256`).
    """

    name: str
    path: str
    url: str | None = None
    repo_id: str | None = None
    filename: str | None = None
    sha256_prefix: str | None = None
    sha256: str | None = None


def _normalise(name: str) -> str:
    return name.strip().replace("-", "_")


def weight_names() -> list[str]:
    """Every name ``--only`` accepts: Stable Diffusion, then the networks of WEIGHT_FILES."""
    return [SD_NAME, *WEIGHT_FILES]


def weight_files(only: Iterable[str] | None = None) -> list[WeightFile]:
    """The files of the weights named in ``only`` (default all), at the paths brainldm reads.

    Names may use ``-`` or ``_`` (``clip-vit-l14`` is ``clip_vit_l14``).

    Raises
    ------
    ValueError
        For an unknown name, listing the valid ones.
    """
    known = {_normalise(n): n for n in weight_names()}
    names = weight_names() if only is None else list(only)
    unknown = [n for n in names if _normalise(n) not in known]
    if unknown or not names:
        raise ValueError(f"only (--only) {','.join(names)!r}: unknown weights {unknown}; "
                         f"allowed: {', '.join(weight_names())}.")  # fmt: skip
    files: list[WeightFile] = []
    for name in dict.fromkeys(known[_normalise(n)] for n in names):
        if name == SD_NAME:
            files += [WeightFile(name, f"{SD_FOLDER}/{f}", repo_id=SD_REPO, filename=f)
                      for f in SD_FILES]  # fmt: skip
        elif WEIGHT_URLS[name].startswith(_HF_PREFIX):
            repo = WEIGHT_URLS[name][len(_HF_PREFIX):].strip("/")
            files += [WeightFile(name, f"{WEIGHT_FILES[name]}/{f}", repo_id=repo, filename=f)
                      for f in CLIP_FILES]  # fmt: skip
        else:
            files.append(WeightFile(name, WEIGHT_FILES[name], url=WEIGHT_URLS[name],
                                    sha256_prefix=torchvision_sha256_prefix(WEIGHT_FILES[name]),
                                    sha256=PINNED_SHA256.get(WEIGHT_FILES[name])))  # fmt: skip
    return files


@dataclass(frozen=True)
class RemoteWeight:
    """Size and published hash of one weight file, before download."""

    file: WeightFile
    size: int
    sha256: str | None = None  # Hugging Face LFS files: their SHA-256
    git_sha1: str | None = None  # Hugging Face small files: their git blob id
    commit: str | None = None


def read_hashes(folder: Path) -> dict:
    """The ``hashes.json`` of a weights folder ({} if none)."""
    path = folder / HASHES_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _hf_error(err: Exception, repo_id: str, endpoint: str | None) -> FetchError:
    from huggingface_hub.utils import GatedRepoError, HfHubHTTPError

    status = getattr(getattr(err, "response", None), "status_code", None)
    page = f"{(endpoint or 'https://huggingface.co').rstrip('/')}/{repo_id}"
    if isinstance(err, GatedRepoError) or status in (401, 403):
        return FetchError(
            f"Hugging Face refused {repo_id} (HTTP {status}): the repository is gated or needs "
            f"a login. Accept its licence on the model page {page} while logged in, then log "
            "in here with `hf auth login` (older: `huggingface-cli login`) or set HF_TOKEN, "
            "and run the command again."
        )
    if isinstance(err, HfHubHTTPError):
        return FetchError(f"Hugging Face {repo_id}: {err}")
    return FetchError(f"cannot reach {page}: {err}")


def _mirrored(url: str, mirror: str | None) -> str:
    """``url`` with its scheme and host replaced by ``mirror`` (the path is kept)."""
    if mirror is None:
        return url
    from urllib.parse import urlsplit

    return mirror.rstrip("/") + urlsplit(url).path


def _remote(file: WeightFile, revision: str, endpoint: str | None, token) -> RemoteWeight:
    if file.url is not None:
        from brainldm.fetch._http import remote_size

        return RemoteWeight(file, remote_size(file.url))
    try:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
    except ImportError:
        raise ImportError("fetching Hugging Face weights needs huggingface_hub: "
                          "pip install 'brainldm[fetch]'") from None  # fmt: skip
    url = hf_hub_url(file.repo_id, file.filename, revision=revision, endpoint=endpoint)
    try:
        meta = get_hf_file_metadata(url, token=token)
    except Exception as err:  # noqa: BLE001 (mapped to one readable error)
        raise _hf_error(err, file.repo_id, endpoint) from err
    etag = (meta.etag or "").strip('"')
    if meta.size is None:
        raise FetchError(f"Hugging Face gives no size for {file.repo_id}/{file.filename}.")
    return RemoteWeight(
        file,
        int(meta.size),
        sha256=etag if len(etag) == 64 else None,
        git_sha1=etag if len(etag) == 40 else None,
        commit=meta.commit_hash,
    )


def _verify(
    path: Path, remote: RemoteWeight, recorded: dict | None, sha256: str | None = None
) -> tuple[str, str]:
    """Check a finished file (``sha256``: its hash if known); return (SHA-256, how checked)."""
    sha256 = sha256 or file_sha256(path)
    checks = []
    if remote.sha256 is not None:
        if sha256 != remote.sha256:
            raise FetchError(f"{path} is corrupt: SHA-256 {sha256}, but Hugging Face lists "
                             f"{remote.sha256}.")  # fmt: skip
        checks.append("sha256 (Hugging Face)")
    if remote.git_sha1 is not None:
        blob = git_blob_sha1(path)
        if blob != remote.git_sha1:
            raise FetchError(f"{path} is corrupt: git blob id {blob}, but Hugging Face lists "
                             f"{remote.git_sha1}.")  # fmt: skip
        checks.append("git blob sha1 (Hugging Face)")
    if remote.file.sha256:
        if sha256 != remote.file.sha256:
            raise FetchError(f"{path} is corrupt: SHA-256 {sha256}, but brainldm pins "
                             f"{remote.file.sha256}.")  # fmt: skip
        checks.append("sha256 pinned in brainldm")
    prefix = remote.file.sha256_prefix
    if prefix:
        if not sha256.startswith(prefix):
            raise FetchError(f"{path} is corrupt: SHA-256 {sha256[:16]}…, but its name says it "
                             f"starts with {prefix}.")  # fmt: skip
        checks.append("sha256 prefix in the name")
    if recorded and recorded.get("sha256"):
        if sha256 != recorded["sha256"]:
            raise FetchError(
                f"{path}: SHA-256 {sha256} differs from the one recorded at its first "
                f"download ({recorded['sha256']}, in {HASHES_FILE})."
            )
        checks.append(f"sha256 recorded in {HASHES_FILE}")
    return sha256, ", ".join(checks) or "size only (first download: SHA-256 recorded)"


def _download_hf(
    remote: RemoteWeight, folder: Path, revision: str, endpoint, token, replace_file: bool
) -> Path:
    from huggingface_hub import hf_hub_download

    file = remote.file
    local_dir = folder / file.path[: -len(file.filename)].rstrip("/")
    stale = replace_file and (folder / file.path).exists()  # only with force=True
    try:
        got = hf_hub_download(file.repo_id, file.filename, revision=revision, local_dir=local_dir,
                              endpoint=endpoint, token=token, force_download=stale)  # fmt: skip
    except Exception as err:  # noqa: BLE001
        raise _hf_error(err, file.repo_id, endpoint) from err
    return Path(got)


def fetch_weights(
    to: str | os.PathLike,
    only: Iterable[str] | None = None,
    *,
    dry_run: bool = False,
    hf_endpoint: str | None = None,
    revision: str = "main",
    token: str | bool | None = None,
    http_mirror: str | None = None,
    workers: int = 4,
    limit_rate: float | None = None,
    progress: bool = True,
    force: bool = False,
    echo: Callable[[str], None] | None = None,
) -> dict:
    """Download Stable Diffusion v1.4 and the evaluation networks into ``to``, verified.

    Hugging Face files go through ``huggingface_hub.hf_hub_download`` and are checked
    against the SHA-256 (or git blob id) the Hub lists; other files are fetched
    over HTTPS through a ``.part`` file resumed with ``Range`` and checked against
    the SHA-256 prefix in their name (torchvision). Every file's SHA-256 is recorded
    in ``to/hashes.json`` at its first download and checked on later downloads.
    A file failing a check is removed. Files already complete are skipped.

    Parameters
    ----------
    to : path-like
        The weights folder: ``evaluation.weights_dir`` of a run config; Stable
        Diffusion goes to ``to/stable-diffusion-v1-4`` (``features.model``).
    only : iterable of str, optional
        Names from :func:`weight_names` (default all).
    dry_run : bool
        List files and sizes, write nothing.
    hf_endpoint : str, optional
        Hugging Face endpoint; default huggingface_hub's (``HF_ENDPOINT`` or huggingface.co).
    revision : str
        Hugging Face revision of the repositories.
    token : str or bool, optional
        Hugging Face token; default the usual ``HF_TOKEN`` / ``hf auth login``.
    http_mirror : str, optional
        Base URL replacing the scheme and host of the non-Hugging Face sources
        (``https://download.pytorch.org/models/x.pth`` → ``<mirror>/models/x.pth``).
    workers : int
        Parallel transfers.
    limit_rate : float, optional
        Maximum bytes per second of each HTTPS transfer.
    progress : bool
        Show progress bars.
    force : bool
        Replace files already at their place whose size differs from the remote
        one (``--force``). Without it such files are refused before any download.
    echo : callable, optional
        Where the file list goes (the CLI passes ``print``); default this module's logger.

    Returns
    -------
    summary : dict
        ``files`` (list of RemoteWeight), ``total`` (bytes), ``transfers``.

    Raises
    ------
    FetchError
        A file differs from the remote one and ``force`` is False (before any
        download), or a transfer or check failed.
    """
    from brainldm._utils import check_positive_int, write_json_atomic

    echo = echo or logger.info
    check_positive_int("workers (--workers)", workers)

    folder = Path(to).expanduser()
    files = [replace(f, url=_mirrored(f.url, http_mirror)) if f.url else f
             for f in weight_files(only)]  # fmt: skip
    remotes = [_remote(f, revision, hf_endpoint, token) for f in files]
    hashes = read_hashes(folder)
    total = sum(r.size for r in remotes)

    def complete(r: RemoteWeight) -> bool:
        path = folder / r.file.path
        return path.is_file() and path.stat().st_size == r.size

    def differs(r: RemoteWeight) -> bool:
        path = folder / r.file.path
        return path.exists() and not complete(r)

    for r in remotes:
        state = "present" if complete(r) else "differs" if differs(r) else "to fetch"
        echo(f"{format_size(r.size):>10}  {state:<8}  {folder / r.file.path}")
    todo = [r for r in remotes if not complete(r)]
    echo(f"total {format_size(total)} in {len(remotes)} files; "
         f"{format_size(sum(r.size for r in todo))} still to fetch")  # fmt: skip
    if dry_run:
        return {"files": remotes, "total": total, "transfers": []}
    different = [r for r in remotes if differs(r)]
    if different and not force:
        raise FetchError(differs_message(
            [(folder / r.file.path, (folder / r.file.path).stat().st_size, r.size)
             for r in different]))  # fmt: skip

    for r in remotes:  # complete before this call, never checked: check and record once
        if r.file.path not in hashes and complete(r):
            try:
                sha256, _ = _verify(folder / r.file.path, r, None)
            except FetchError as err:
                echo(f"warning: {err} It was not written by this command: remove it and run "
                     "the command again.")  # fmt: skip
                continue
            hashes[r.file.path] = {"sha256": sha256, "size": r.size}

    initial = sum(part_path(folder / r.file.path).stat().st_size for r in todo
                  if r.file.url and part_path(folder / r.file.path).is_file())  # fmt: skip
    bar = ByteProgress(sum(r.size for r in todo if r.file.url), initial, progress, "weights")
    cancel = threading.Event()
    lock = threading.Lock()  # hashes is written by the threads and saved by this one

    def job(r: RemoteWeight) -> Callable[[], Transfer]:
        def run() -> Transfer:
            path = folder / r.file.path
            with lock:
                recorded = hashes.get(r.file.path)
            if r.file.url is not None:
                from brainldm.fetch._http import download_url

                expected, source = r.file.sha256, "pinned in brainldm"
                if expected is None and recorded:
                    expected = recorded.get("sha256")
                    source = f"recorded at its first download, in {folder / HASHES_FILE}"
                transfer, known = download_url(r.file.url, path, size=r.size, progress=bar,
                                               sha256_prefix=r.file.sha256_prefix,
                                               sha256=expected, sha256_from=source,
                                               limit_rate=limit_rate, cancel=cancel)  # fmt: skip
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                got = _download_hf(r, folder, revision, hf_endpoint, token, force)
                if got.resolve() != path.resolve() or got.stat().st_size != r.size:
                    raise FetchError(
                        f"huggingface_hub wrote {got}, expected {path} of {r.size} bytes."
                    )
                transfer, known = Transfer(path, r.size, r.size, 0, ""), None
            try:
                sha256, checked = _verify(path, r, recorded, known)
            except FetchError as err:
                path.unlink()  # just written by this call, and wrong
                raise FetchError(f"{err} The file was removed; run the command again.") from None
            entry = {"sha256": sha256, "size": r.size,
                     "source": r.file.url or f"{r.file.repo_id}/{r.file.filename}",
                     **({"commit": r.commit} if r.commit else {})}  # fmt: skip
            with lock:
                hashes[r.file.path] = entry
            return Transfer(path, transfer.size, transfer.downloaded, transfer.resumed_from,
                            checked)  # fmt: skip
        return run

    try:
        transfers = run_parallel([job(r) for r in todo], workers, cancel)
    finally:
        bar.close()
        with lock:  # threads still running after Ctrl-C may add entries meanwhile
            snapshot = dict(hashes)
        if snapshot:
            write_json_atomic(folder / HASHES_FILE, snapshot)
    echo(f"{len(transfers)} files fetched into {folder}. In a run config: "
         f"features.model = \"{folder / SD_FOLDER}\", evaluation.weights_dir = \"{folder}\".")
    return {"files": remotes, "total": total, "transfers": transfers}
