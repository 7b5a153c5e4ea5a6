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
           "--endpoint-url", bucket["endpoint_url"], "--limit-rate", str(size // 4)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not (part.is_file() and part.stat().st_size > 0) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()
    kept = part.stat().st_size
    assert 0 < kept < size and not target.exists()  # killed mid-file
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
    with pytest.raises(FetchError, match=r"brainmask\.nii\.gz is corrupt.*ETag.*--what brainmask"):
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
    with pytest.raises(ValueError, match="--what contains unknown value.*'betaz'"):
        nsd_files(tmp_path, [1], what=["betaz"])
    with pytest.raises(ValueError, match=r"--subjects \[9\].*allowed: \[1, 2, 3, 4, 5, 6, 7, 8\]"):
        nsd_files(tmp_path, [9])
    with pytest.raises(ValueError, match="subject 4 has sessions 1-30 only .not 31-37"):
        nsd_files(tmp_path, [4], sessions=parse_sessions("1-37"))
    with pytest.raises(ValueError, match="--format 'nifti' does not go with --space 'fsaverage'"):
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
