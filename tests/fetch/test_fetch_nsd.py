"""``fetch_nsd`` against moto's S3 server holding a small synthetic NSD in the real key layout."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from brainldm.fetch import FetchError, fetch_nsd, fetch_status, nsd_files, parse_sessions
from brainldm.nsd import NSDLayout

BUCKET = "natural-scenes-dataset"
PUBLIC = {"ACL": "public-read"}  # as NSD's bucket: anonymous reads
# Everything but the subject's FreeSurfer surfaces, which the synthetic NSD does not write.
WHAT = ["design", "stimuli", "captions", "betas", "rois", "brainmask", "transforms", "ncsnr"]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """One subject, one session, every file brainldm reads (tiny)."""
    from brainldm.testing import write_fake_nsd

    root = tmp_path_factory.mktemp("source_nsd")
    write_fake_nsd(root, subjects=(1,), n_sessions=1, n_trials_per_session=30,
                   formats=("hdf5", "fsaverage"), n_fsaverage_vertices=37,
                   n_native_vertices=20, random_state=0)  # fmt: skip
    return root


def _coco_zip(source: Path) -> bytes:
    """COCO's archive layout: annotations/captions_*.json plus a file we must not extract."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for split in ("train2017", "val2017"):
            zf.write(NSDLayout(source).captions(split), f"annotations/captions_{split}.json")
        zf.writestr("annotations/instances_val2017.json", "{}")
    return buf.getvalue()


@pytest.fixture
def bucket(s3, source, http_server):
    """Upload the synthetic NSD's files to the local bucket and serve COCO's zip; returns URLs."""
    annotations = NSDLayout(source).annotations_dir
    for path in source.rglob("*"):
        if path.is_file() and annotations not in path.parents:
            s3.upload_file(str(path), BUCKET, path.relative_to(source).as_posix(), ExtraArgs=PUBLIC)
    base, served = http_server
    served.files["/annotations/annotations_trainval2017.zip"] = _coco_zip(source)
    return {"endpoint_url": s3.meta.endpoint_url,
            "coco_url": f"{base}/annotations/annotations_trainval2017.zip"}


def _fetch(root, urls, **kwargs):
    kwargs = {"sessions": [1], "what": WHAT, "progress": False, "echo": lambda s: None,
              "workers": 4, **urls, **kwargs}  # fmt: skip
    return fetch_nsd(root, [1], **kwargs)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".brainldm-fetch.json"}  # fmt: skip


def test_fetch_reproduces_the_tree_and_prepare_reads_it(bucket, source, tmp_path):
    from brainldm.nsd import prepare_subject

    root = tmp_path / "nsd"
    first = _fetch(root, bucket)
    expected = {f.path.relative_to(root).as_posix() for f in first["plan"].files}
    source_tree = _tree(source)
    assert expected < set(source_tree)  # (the source also has fsaverage betas)
    # byte for byte, at the same paths, nothing else (the COCO archive was removed)
    assert _tree(root) == {k: source_tree[k] for k in expected}
    assert (root / ".brainldm-fetch.json").is_file()
    assert {t.verified for t in first["transfers"]} >= {"md5"}
    again = _fetch(root, bucket)  # a second run downloads nothing
    assert again["transfers"] == []
    assert again["plan"].present == set(again["plan"].sizes)
    split, path = prepare_subject(NSDLayout(root), 1, tmp_path / "prepared", progress=False)
    assert path.is_file() and split.subject == 1


def test_dry_run_lists_sizes_and_total_writes_nothing(bucket, source, tmp_path, capsys):
    from brainldm.cli import main

    root = tmp_path / "nsd"
    lines: list[str] = []
    plan = _fetch(root, bucket, dry_run=True, echo=lines.append)["plan"]
    assert not root.exists()
    zip_size = len(_coco_zip(source))
    s3_sizes = {f.path: (source / f.key).stat().st_size for f in plan.files if f.what != "captions"}
    assert plan.total == sum(plan.sizes.values()) == sum(s3_sizes.values()) + zip_size
    assert "NSD Data Access Agreement" in lines[0]
    assert len(lines[1].splitlines()) == len(s3_sizes) + 2  # one per file, the archive, total
    code = main(["-q", "fetch", "nsd", "--root", str(root), "--subjects", "1", "--sessions", "1",
                 "--what", ",".join(WHAT), "--dry-run", "--endpoint-url", bucket["endpoint_url"],
                 "--coco-url", bucket["coco_url"]])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and not root.exists()
    from brainldm.fetch import format_size

    assert f"total {format_size(plan.total)} in {len(s3_sizes) + 1} downloads" in out


def test_killed_fetch_resumes_with_range(bucket, source, tmp_path):
    root = tmp_path / "nsd"
    target = NSDLayout(root).stimuli()
    part = target.with_name(target.name + ".part")
    size = NSDLayout(source).stimuli().stat().st_size
    cmd = [sys.executable, "-c", "import sys; from brainldm.cli import main; sys.exit(main())",
           "-q", "fetch", "nsd", "--root", str(root), "--subjects", "1", "--what", "stimuli",
           "--endpoint-url", bucket["endpoint_url"], "--limit-rate", str(size // 40)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not (part.is_file() and part.stat().st_size > 0) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()
    assert part.is_file(), "the fetch wrote no .part within 30 s"
    kept = part.stat().st_size
    # at size // 40 bytes per second the whole file takes ~40 s: killed mid-file
    assert 0 < kept < size and not target.exists(), (
        f"expected the fetch killed mid-file: .part {kept} of {size} bytes, "
        f"final file {'present' if target.exists() else 'absent'}")
    result = _fetch(root, bucket, what=["stimuli"])
    (transfer,) = result["transfers"]
    assert transfer.resumed_from == kept and transfer.downloaded == size - kept
    assert target.read_bytes() == NSDLayout(source).stimuli().read_bytes()
    assert not part.exists()


def test_object_changed_after_listing_is_refused(bucket, source, tmp_path, s3, monkeypatch):
    import brainldm.fetch._nsd as nsd_module

    key = NSDLayout(source).brainmask(1).relative_to(source).as_posix()
    real_plan = nsd_module.plan_nsd

    def plan_then_replace(*args, **kwargs):
        plan = real_plan(*args, **kwargs)
        good = (source / key).read_bytes()
        bad = bytes(b ^ 1 for b in good)  # same size, other bytes
        s3.put_object(Bucket=BUCKET, Key=key, Body=bad, **PUBLIC)
        return plan

    monkeypatch.setattr(nsd_module, "plan_nsd", plan_then_replace)
    root = tmp_path / "nsd"
    with pytest.raises(FetchError, match=r"brainmask\.nii\.gz.*changed since it was listed.*"
                       r"--what brainmask"):  # fmt: skip
        _fetch(root, bucket, what=["brainmask"])
    target = NSDLayout(root).brainmask(1)
    assert not target.exists() and not target.with_name(target.name + ".part").exists()


def test_tampered_part_file_is_refused_then_fetched_again(bucket, source, tmp_path):
    root = tmp_path / "nsd"
    target = NSDLayout(root).stimuli()
    part = target.with_name(target.name + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"not the first bytes of nsd_stimuli.hdf5")
    with pytest.raises(FetchError, match="nsd_stimuli.hdf5 is corrupt.*removed"):
        _fetch(root, bucket, what=["stimuli"])
    assert not part.exists() and not target.exists()
    _fetch(root, bucket, what=["stimuli"])
    assert target.read_bytes() == NSDLayout(source).stimuli().read_bytes()


def test_multipart_etag_is_recomputed(s3, tmp_path):
    from boto3.s3.transfer import TransferConfig

    root = tmp_path / "nsd"
    content = os.urandom(6 * 2**20)  # moto's minimum part is 5 MiB: two parts
    (tmp_path / "stimuli").write_bytes(content)
    key = NSDLayout(root).stimuli().relative_to(root).as_posix()
    s3.upload_file(str(tmp_path / "stimuli"), BUCKET, key, ExtraArgs=PUBLIC,
                   Config=TransferConfig(multipart_threshold=5 * 2**20,
                                         multipart_chunksize=5 * 2**20))  # fmt: skip
    assert s3.head_object(Bucket=BUCKET, Key=key)["ETag"].endswith('-2"')
    result = _fetch(root, {"endpoint_url": s3.meta.endpoint_url}, what=["stimuli"])
    assert [t.verified for t in result["transfers"]] == ["multipart md5"]
    assert NSDLayout(root).stimuli().read_bytes() == content
    # status --hashes recomputes the multipart ETag from the part size recorded at download
    (row,) = fetch_status(root, subjects=[1], what=["stimuli"], hashes=True)
    assert row.ok and "MD5 checked (multipart ETag)" in row.detail, row.detail
    stimuli = NSDLayout(root).stimuli()
    stimuli.write_bytes(content[:-1] + bytes([content[-1] ^ 1]))  # same size, other bytes
    (row,) = fetch_status(root, subjects=[1], what=["stimuli"], hashes=True)
    assert row.state == "corrupt", row


def test_files_brainldm_did_not_fetch_are_unchecked(bucket, source, tmp_path):
    root = tmp_path / "nsd"
    mask = NSDLayout(root).brainmask(1)
    mask.parent.mkdir(parents=True)
    mask.write_bytes(NSDLayout(source).brainmask(1).read_bytes())  # the user's own copy
    _fetch(root, bucket, what=["brainmask", "design"])
    rows = {r.path: r for r in fetch_status(root, subjects=[1], what=["brainmask", "design"],
                                            hashes=True)}  # fmt: skip
    assert "unchecked" in rows[mask].detail
    assert "MD5 checked" in rows[NSDLayout(root).expdesign()].detail


def test_missing_key_names_the_file_and_its_download(bucket, tmp_path):
    root = tmp_path / "nsd"
    with pytest.raises(FetchError) as info:
        _fetch(root, bucket, what=["freesurfer", "brainmask"])
    message = str(info.value)
    assert "8 file(s) are not in s3://natural-scenes-dataset" in message
    assert "nsddata/freesurfer/subj01/surf/lh.inflated (--what freesurfer, the NSD download " \
           "'nsddata/'" in message
    assert not root.exists()  # nothing written before every key is found


def test_endpoint_from_environment(bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", bucket["endpoint_url"])
    root = tmp_path / "nsd"
    fetch_nsd(root, [1], what=["brainmask"], progress=False, echo=lambda s: None)
    assert NSDLayout(root).brainmask(1).is_file()


def test_files_come_from_the_layout_and_bad_input_is_named(tmp_path):
    layout = NSDLayout(tmp_path)
    files = nsd_files(tmp_path, [1, 2], sessions=[1, 2], what=["betas", "design"])
    assert {f.path for f in files} == {
        layout.betas(s, n) for s in (1, 2) for n in (1, 2)
    } | {layout.expdesign(), layout.stim_info(), layout.responses(1), layout.responses(2)}
    assert all(f.key == f.path.relative_to(tmp_path).as_posix() for f in files)
    fs = nsd_files(tmp_path, [1], sessions=[3], what=["betas", "ncsnr"], space="fsaverage")
    assert {f.path.name for f in fs} == {"lh.betas_session03.mgh", "rh.betas_session03.mgh",
                                        "lh.ncsnr.mgh", "rh.ncsnr.mgh"}  # fmt: skip
    assert len(nsd_files(tmp_path, [1])) > len(nsd_files(tmp_path, [1], sessions=[1]))
    assert parse_sessions("1-3,5") == [1, 2, 3, 5]
    with pytest.raises(ValueError, match="--sessions '2-1' is not valid"):
        parse_sessions("2-1")
    with pytest.raises(ValueError, match=r"what \(--what\) contains unknown value.*'betaz'"):
        nsd_files(tmp_path, [1], what=["betaz"])
    with pytest.raises(ValueError, match=r"subjects \(--subjects\) \[9\].*"
                       r"allowed: \[1, 2, 3, 4, 5, 6, 7, 8\]"):  # fmt: skip
        nsd_files(tmp_path, [9])
    with pytest.raises(ValueError, match="subject 4 has sessions 1-30 only .not 31-37"):
        nsd_files(tmp_path, [4], sessions=parse_sessions("1-37"))
    with pytest.raises(ValueError, match=r"fmt \(--format\) 'nifti' does not go with "
                       r"space \(--space\) 'fsaverage'"):  # fmt: skip
        nsd_files(tmp_path, [1], space="fsaverage", fmt="nifti")


def test_status_of_an_nsd_copy(bucket, tmp_path, capsys):
    from brainldm.cli import main

    root = tmp_path / "nsd"
    _fetch(root, bucket, what=["design", "brainmask", "captions"])
    args = ["fetch", "status", "--root", str(root), "--subjects", "1",
            "--what", "design,brainmask,captions", "--hashes"]  # fmt: skip
    assert main(args) == 0
    layout = NSDLayout(root)
    mask = layout.brainmask(1)
    mask.write_bytes(bytes(b ^ 1 for b in mask.read_bytes()))  # same size, other bytes
    layout.responses(1).unlink()
    capsys.readouterr()
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "corrupt   nsd:brainmask" in out and "MD5" in out
    assert f"missing   nsd:design     {layout.responses(1)}" in out
    assert main(args[:-1]) == 1  # without --hashes: the missing file still fails
    assert [r.ok for r in fetch_status(root, subjects=[1], what=["captions"])] == [True, True]


def test_only_brainldm_fetch_imports_network_clients():
    """Nothing else in brainldm downloads: no other module imports a network client."""
    import ast

    import brainldm

    modules = {"urllib.request", "http.client"}
    packages = {"requests", "boto3", "botocore", "huggingface_hub", "httpx", "socket", "urllib3"}
    src = Path(brainldm.__file__).parent
    offenders = []
    for path in src.rglob("*.py"):
        if "fetch" in path.relative_to(src).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])  # fmt: skip
            offenders += [f"{path.relative_to(src)}: {n}" for n in names
                          if n in modules or n.split(".")[0] in packages]  # fmt: skip
    assert offenders == []
    assert any("fetch" in p.parts for p in src.rglob("_s3.py"))  # the check sees the package


def test_first_failure_stops_the_queued_downloads(bucket, source, tmp_path, s3, monkeypatch):
    import brainldm.fetch._nsd as nsd_module

    real_plan = nsd_module.plan_nsd
    failed: list[str] = []

    def plan_then_delete_first(*args, **kwargs):
        plan = real_plan(*args, **kwargs)
        first = next(f for f in plan.files if f.path not in plan.present)
        s3.delete_object(Bucket=BUCKET, Key=first.key)  # its download will fail
        failed.append(first.key)
        return plan

    monkeypatch.setattr(nsd_module, "plan_nsd", plan_then_delete_first)
    root = tmp_path / "nsd"
    with pytest.raises(FetchError, match="could not download"):
        _fetch(root, bucket, what=["design", "rois", "brainmask"], workers=1)
    assert failed
    written = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    assert written == [], f"downloads started after the first failure: {written}"


def test_file_of_another_size_is_refused_without_force(bucket, source, tmp_path):
    root = tmp_path / "nsd"
    mask = NSDLayout(root).brainmask(1)
    mask.parent.mkdir(parents=True)
    mask.write_bytes(b"the user's own, different brainmask")
    lines: list[str] = []
    plan = _fetch(root, bucket, what=["brainmask", "design"], dry_run=True,
                  echo=lines.append)["plan"]  # fmt: skip
    assert plan.differs == {mask} and "differs" in lines[1]
    with pytest.raises(FetchError, match=r"(?s)differ in size.*brainmask\.nii\.gz.*--force"):
        _fetch(root, bucket, what=["brainmask", "design"])
    assert mask.read_bytes() == b"the user's own, different brainmask"
    assert not NSDLayout(root).expdesign().exists()  # refused before any download
    _fetch(root, bucket, what=["brainmask", "design"], force=True)
    assert mask.read_bytes() == NSDLayout(source).brainmask(1).read_bytes()


def test_users_coco_archive_is_kept_and_ours_removed(bucket, source, tmp_path, http_server):
    _, served = http_server
    root = tmp_path / "nsd"
    captions_dir = NSDLayout(root).captions("train2017").parent
    captions_dir.mkdir(parents=True)
    own = captions_dir / "annotations_trainval2017.zip"
    own.write_bytes(b"the user's own file, another size")
    _fetch(root, bucket, what=["captions"])
    assert own.read_bytes() == b"the user's own file, another size"  # untouched
    assert sorted(p.name for p in captions_dir.iterdir()) == [
        "annotations_trainval2017.zip", "captions_train2017.json", "captions_val2017.json"]
    # the user's own archive of the right size: used and kept
    for split in ("train2017", "val2017"):
        NSDLayout(root).captions(split).unlink()
    own.write_bytes(served.files["/annotations/annotations_trainval2017.zip"])
    n_requests = len(served.requests)
    _fetch(root, bucket, what=["captions"])
    assert own.is_file() and NSDLayout(root).captions("val2017").is_file()
    assert all(m == "HEAD" for m, _, _ in served.requests[n_requests:])


def test_corrupt_coco_archive_is_refused_and_does_not_block_the_next_run(
    bucket, source, tmp_path, http_server
):
    _, served = http_server
    route = "/annotations/annotations_trainval2017.zip"
    good = served.files[route]
    served.files[route] = good[: len(good) // 2]  # truncated: not a readable zip
    root = tmp_path / "nsd"
    with pytest.raises(FetchError, match="(?s)not a readable zip.*removed; run the command again"):
        _fetch(root, bucket, what=["captions"])
    captions_dir = NSDLayout(root).captions("train2017").parent
    assert list(captions_dir.iterdir()) == []  # no archive, no .part, no captions
    served.files[route] = good
    _fetch(root, bucket, what=["captions"])
    assert NSDLayout(root).captions("train2017").read_bytes() == \
        NSDLayout(source).captions("train2017").read_bytes()
    assert sorted(p.name for p in captions_dir.iterdir()) == [
        "captions_train2017.json", "captions_val2017.json"]


def _stop_after_first_chunk(s3, tmp_path, key: str, target: Path) -> int:
    """Start downloading ``key`` to ``target`` and stop after its first chunk; return bytes kept."""
    import threading

    from brainldm.fetch._s3 import RemoteObject, download_object, s3_client

    head = s3.head_object(Bucket=BUCKET, Key=key)
    obj = RemoteObject(key, head["ContentLength"], head["ETag"].strip('"'))
    cancel = threading.Event()
    with pytest.raises(FetchError, match="stopped; run the command again to resume"):
        download_object(s3_client(s3.meta.endpoint_url), BUCKET, obj, target,
                        progress=lambda n: cancel.set(), limit_rate=obj.size * 8 // 16,
                        cancel=cancel)  # fmt: skip
    return target.with_name(target.name + ".part").stat().st_size


def test_part_of_an_older_version_is_discarded(s3, tmp_path):
    root = tmp_path / "nsd"
    target = NSDLayout(root).stimuli()
    key = target.relative_to(root).as_posix()
    old, new = os.urandom(64_000), os.urandom(64_000)  # same size, other bytes
    s3.put_object(Bucket=BUCKET, Key=key, Body=old, **PUBLIC)
    kept = _stop_after_first_chunk(s3, tmp_path, key, target)
    assert 0 < kept < len(old)
    s3.put_object(Bucket=BUCKET, Key=key, Body=new, **PUBLIC)  # a new version meanwhile
    (transfer,) = _fetch(root, {"endpoint_url": s3.meta.endpoint_url},
                         what=["stimuli"])["transfers"]  # fmt: skip
    assert transfer.resumed_from == 0 and target.read_bytes() == new
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_server_ignoring_range_restarts_from_zero(s3, tmp_path, monkeypatch):
    import brainldm.fetch._s3 as s3_module

    root = tmp_path / "nsd"
    target = NSDLayout(root).stimuli()
    key = target.relative_to(root).as_posix()
    content = os.urandom(64_000)
    s3.put_object(Bucket=BUCKET, Key=key, Body=content, **PUBLIC)
    kept = _stop_after_first_chunk(s3, tmp_path, key, target)
    real_client = s3_module.s3_client

    class IgnoresRange:
        def __init__(self, client):
            self._client = client

        def __getattr__(self, name):
            return getattr(self._client, name)

        def get_object(self, **kwargs):
            kwargs.pop("Range", None)
            return self._client.get_object(**kwargs)

    monkeypatch.setattr(s3_module, "s3_client", lambda *a, **k: IgnoresRange(real_client(*a, **k)))
    assert 0 < kept < len(content)
    _fetch(root, {"endpoint_url": s3.meta.endpoint_url}, what=["stimuli"])
    assert target.read_bytes() == content
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_missing_ncsnr_is_skipped_with_a_warning(bucket, source, tmp_path, s3, caplog):
    ncsnr = NSDLayout(source).ncsnr(1, "hdf5")
    s3.delete_object(Bucket=BUCKET, Key=ncsnr.relative_to(source).as_posix())
    root = tmp_path / "nsd"
    with caplog.at_level("WARNING", logger="brainldm.fetch"):
        result = _fetch(root, bucket, what=["ncsnr", "brainmask"])
    assert [f.what for f in result["plan"].skipped] == ["ncsnr"]
    assert "skipped" in caplog.text and ncsnr.name in caplog.text
    assert NSDLayout(root).brainmask(1).is_file()
    s3.delete_object(Bucket=BUCKET, Key=NSDLayout(source).brainmask(1).relative_to(source)
                     .as_posix())  # fmt: skip
    with pytest.raises(FetchError, match="(?s)not in s3://.*--what brainmask"):  # others: an error
        _fetch(tmp_path / "other", bucket, what=["ncsnr", "brainmask"])


def test_dropped_s3_stream_is_retried_with_range(s3, tmp_path, monkeypatch):
    from botocore.exceptions import ResponseStreamingError

    import brainldm.fetch._s3 as s3_module

    root = tmp_path / "nsd"
    target = NSDLayout(root).stimuli()
    key = target.relative_to(root).as_posix()
    content = os.urandom(64_000)
    s3.put_object(Bucket=BUCKET, Key=key, Body=content, **PUBLIC)
    real_client = s3_module.s3_client
    ranges: list[str] = []

    class DropsOnce:
        def __init__(self, client):
            self._client = client

        def __getattr__(self, name):
            return getattr(self._client, name)

        def get_object(self, **kwargs):
            ranges.append(kwargs["Range"])
            response = self._client.get_object(**kwargs)
            if len(ranges) == 1:  # the first stream breaks after 1000 bytes
                body = response["Body"]

                class Broken:
                    def iter_chunks(self, size):
                        yield body.read(1000)
                        raise ResponseStreamingError(error="connection reset")

                response["Body"] = Broken()
            return response

    monkeypatch.setattr(s3_module, "s3_client", lambda *a, **k: DropsOnce(real_client(*a, **k)))
    _fetch(root, {"endpoint_url": s3.meta.endpoint_url}, what=["stimuli"])
    assert ranges == ["bytes=0-", "bytes=1000-"]
    assert target.read_bytes() == content
