"""``fetch_weights`` and ``fetch_status`` against a local HTTP server (plain files + Hub routes)."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from brainldm.evaluation import WEIGHT_FILES, WEIGHT_URLS
from brainldm.fetch import (
    HASHES_FILE,
    SD_FOLDER,
    FetchError,
    fetch_status,
    fetch_weights,
    weight_files,
)

SWAV_PATH = "/deepcluster/swav_800ep_pretrain.pth.tar"


@pytest.fixture
def hub(http_server, monkeypatch):
    """The server with Stable Diffusion, CLIP and the plain-HTTPS files; huggingface_hub online."""
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the root conftest sets offline
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    base, served = http_server
    sd = {f.filename: os.urandom(300) + f.filename.encode()
          for f in weight_files(["sd-v1-4"])}  # fmt: skip
    served.repos["CompVis/stable-diffusion-v1-4"] = sd
    served.repos["openai/clip-vit-large-patch14"] = {"config.json": b"{}",
                                                     "model.safetensors": os.urandom(1000)}
    for url in WEIGHT_URLS.values():
        if not url.startswith("https://huggingface.co"):
            served.files["/" + url.split("/", 3)[3]] = os.urandom(5000)
    return base, served


def _fetch(to, base, only, **kwargs):
    return fetch_weights(to, only, hf_endpoint=base, http_mirror=base, progress=False,
                         echo=lambda s: None, token=False, **kwargs)  # fmt: skip


def test_hub_and_https_files_land_where_brainldm_reads_them(hub, tmp_path):
    base, served = hub
    result = _fetch(tmp_path, base, ["sd-v1-4", "clip-vit-l14", "swav_resnet50"])
    sd = tmp_path / SD_FOLDER
    for name, content in served.repos["CompVis/stable-diffusion-v1-4"].items():
        assert (sd / name).read_bytes() == content
    for sub in ("vae", "unet", "text_encoder", "tokenizer", "scheduler"):  # what load_ldm needs
        assert (sd / sub).is_dir()
    clip = tmp_path / WEIGHT_FILES["clip_vit_l14"]
    assert (clip / "model.safetensors").read_bytes() == \
        served.repos["openai/clip-vit-large-patch14"]["model.safetensors"]
    swav = served.files[SWAV_PATH]
    assert (tmp_path / WEIGHT_FILES["swav_resnet50"]).read_bytes() == swav
    hashes = json.loads((tmp_path / HASHES_FILE).read_text())
    assert hashes[WEIGHT_FILES["swav_resnet50"]]["sha256"] == hashlib.sha256(swav).hexdigest()
    checks = {t.path.name: t.verified for t in result["transfers"]}
    assert checks["diffusion_pytorch_model.safetensors"] == "sha256 (Hugging Face)"
    assert checks["config.json"] == "git blob sha1 (Hugging Face)"
    n_requests = len(served.requests)
    again = _fetch(tmp_path, base, ["sd-v1-4", "clip-vit-l14", "swav_resnet50"])
    assert again["transfers"] == []
    assert all(method == "HEAD" for method, _, _ in served.requests[n_requests:])
    rows = fetch_status(weights=tmp_path, only=["sd-v1-4", "clip-vit-l14", "swav_resnet50"],
                        hashes=True)  # fmt: skip
    assert {r.state for r in rows} == {"present"}


def test_wrong_hub_hash_is_refused_and_removed(hub, tmp_path):
    base, served = hub
    served.wrong_hash.add("CompVis/stable-diffusion-v1-4/unet/diffusion_pytorch_model.safetensors")
    with pytest.raises(FetchError, match=r"diffusion_pytorch_model\.safetensors is corrupt: "
                       r"SHA-256 .* Hugging Face lists 0000.*removed"):  # fmt: skip
        _fetch(tmp_path, base, ["sd-v1-4"], workers=1)
    assert not (tmp_path / SD_FOLDER / "unet" / "diffusion_pytorch_model.safetensors").exists()


def test_torchvision_name_hash_is_checked(hub, tmp_path):
    base, _ = hub  # our AlexNet bytes cannot have the SHA-256 prefix 7be5be79 of the name
    with pytest.raises(FetchError, match="alexnet-owt-7be5be79.pth is corrupt: SHA-256 .*starts "
                       "with 7be5be79.*removed"):  # fmt: skip
        _fetch(tmp_path, base, ["alexnet"])
    path = tmp_path / WEIGHT_FILES["alexnet"]
    assert not path.exists() and not path.with_name(path.name + ".part").exists()


def test_https_download_resumes_and_recorded_hash_is_checked_later(hub, tmp_path):
    base, served = hub
    content = served.files[SWAV_PATH]
    path = tmp_path / WEIGHT_FILES["swav_resnet50"]
    path.with_name(path.name + ".part").write_bytes(content[:1234])  # an interrupted download
    (transfer,) = _fetch(tmp_path, base, ["swav_resnet50"])["transfers"]
    assert (transfer.resumed_from, transfer.downloaded) == (1234, len(content) - 1234)
    assert ("GET", SWAV_PATH, "bytes=1234-") in served.requests
    assert path.read_bytes() == content
    # The file disappears and the server now serves other bytes: the recorded hash refuses them.
    path.unlink()
    served.files[SWAV_PATH] = os.urandom(len(content))
    recorded = f"is corrupt: SHA-256 .*recorded at its first download, in .*{HASHES_FILE}"
    with pytest.raises(FetchError, match=recorded):
        _fetch(tmp_path, base, ["swav_resnet50"])
    assert not path.exists()


def test_gated_repository_explains_the_licence(hub, tmp_path):
    base, served = hub
    served.gated.add("CompVis/stable-diffusion-v1-4")
    with pytest.raises(FetchError, match=f"gated.*Accept its licence on the model page "
                       f"{base}/CompVis/stable-diffusion-v1-4.*HF_TOKEN"):  # fmt: skip
        _fetch(tmp_path, base, ["sd-v1-4"])
    assert not (tmp_path / SD_FOLDER).exists()


def test_dry_run_total_is_the_sum_of_the_listed_sizes(hub, tmp_path):
    base, served = hub
    lines: list[str] = []
    result = fetch_weights(tmp_path, None, hf_endpoint=base, http_mirror=base, dry_run=True,
                           progress=False, echo=lines.append, token=False)  # fmt: skip
    sizes = [len(c) for repo in served.repos.values() for c in repo.values()]
    sizes += [len(c) for c in served.files.values()]
    assert result["total"] == sum(r.size for r in result["files"]) == sum(sizes)
    assert len(lines) == len(weight_files()) + 1 and lines[-1].startswith("total ")
    assert list(tmp_path.iterdir()) == []


def test_status_reports_missing_and_corrupt_and_exits_non_zero(hub, tmp_path, capsys):
    from brainldm.cli import main

    base, _ = hub
    _fetch(tmp_path, base, ["swav_resnet50", "clip-vit-l14"])
    assert main(["fetch", "status", "--weights", str(tmp_path),
                 "--only", "swav_resnet50,clip-vit-l14"]) == 0  # fmt: skip
    swav = tmp_path / WEIGHT_FILES["swav_resnet50"]
    swav.write_bytes(swav.read_bytes()[::-1])  # same size, other bytes
    (tmp_path / WEIGHT_FILES["clip_vit_l14"] / "config.json").unlink()
    capsys.readouterr()
    assert main(["fetch", "status", "--weights", str(tmp_path), "--hashes",
                 "--only", "swav_resnet50,clip-vit-l14"]) == 1  # fmt: skip
    out = capsys.readouterr().out
    assert "corrupt   weights:swav_resnet50" in out
    assert "missing   weights:clip_vit_l14" in out
    assert "1 corrupt, 1 missing, 1 present" in out


def test_unknown_weight_name_is_refused_before_any_request(tmp_path):
    with pytest.raises(ValueError, match=r"only \(--only\) 'sd-v1-5': unknown weights.*"
                       "allowed: sd-v1-4, "):  # fmt: skip
        fetch_weights(tmp_path, ["sd-v1-5"])


def test_importing_fetch_loads_no_client_library():
    import subprocess
    import sys

    code = ("import sys, brainldm.fetch, brainldm.cli; print(','.join(m for m in ('boto3', "
            "'botocore', 'huggingface_hub', 'moto', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_file_of_another_size_is_refused_without_force(hub, tmp_path):
    base, served = hub
    swav = tmp_path / WEIGHT_FILES["swav_resnet50"]
    config = tmp_path / SD_FOLDER / "unet" / "config.json"
    for path in (swav, config):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"the user's own file")
    with pytest.raises(FetchError, match=r"(?s)2 file\(s\) already in place differ.*--force"):
        _fetch(tmp_path, base, ["swav_resnet50", "sd-v1-4"])
    assert swav.read_bytes() == config.read_bytes() == b"the user's own file"
    assert not (tmp_path / SD_FOLDER / "model_index.json").exists()  # nothing downloaded
    _fetch(tmp_path, base, ["swav_resnet50", "sd-v1-4"], force=True)
    assert swav.read_bytes() == served.files[SWAV_PATH]
    assert config.read_bytes() == served.repos["CompVis/stable-diffusion-v1-4"]["unet/config.json"]


def test_ctrl_c_in_fetch_prints_how_to_resume_and_exits_130(monkeypatch, tmp_path, capsys):
    import brainldm.fetch
    from brainldm.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(brainldm.fetch, "fetch_weights", interrupted)
    assert main(["-q", "fetch", "weights", "--to", str(tmp_path)]) == 130
    assert "interrupted; run the command again to resume" in capsys.readouterr().err


def test_dropped_connection_is_retried_with_range(hub, tmp_path):
    base, served = hub
    content = served.files[SWAV_PATH]
    served.drop_after[SWAV_PATH] = 1000
    (transfer,) = _fetch(tmp_path, base, ["swav_resnet50"])["transfers"]
    assert (tmp_path / WEIGHT_FILES["swav_resnet50"]).read_bytes() == content
    gets = [r for m, p, r in served.requests if m == "GET" and p == SWAV_PATH]
    assert gets == [None, "bytes=1000-"]
    assert transfer.downloaded == len(content)


def test_bad_workers_is_refused_before_any_request(tmp_path):
    from brainldm.fetch import fetch_nsd

    with pytest.raises(ValueError, match=r"workers \(--workers\) must be a positive integer, "
                       "got 0"):  # fmt: skip
        fetch_weights(tmp_path, ["alexnet"], workers=0)
    with pytest.raises(ValueError, match=r"workers \(--workers\) must be a positive integer"):
        fetch_nsd(tmp_path, [1], what=["brainmask"], workers=0)
    assert list(tmp_path.iterdir()) == []


def test_part_of_an_older_https_version_is_not_resumed(hub, tmp_path):
    from brainldm.fetch._common import write_part_info

    base, served = hub
    old = served.files[SWAV_PATH]
    path = tmp_path / WEIGHT_FILES["swav_resnet50"]
    path.with_name(path.name + ".part").write_bytes(old[:1234])  # from the old version
    write_part_info(path, {"url": base + SWAV_PATH, "size": len(old), "validator": '"v1"'})
    new = os.urandom(len(old))  # same size, other bytes, another ETag
    served.files[SWAV_PATH], served.etags[SWAV_PATH] = new, '"v2"'
    (transfer,) = _fetch(tmp_path, base, ["swav_resnet50"])["transfers"]
    assert ("GET", SWAV_PATH, "bytes=1234-") in served.requests  # asked If-Range: "v1"
    assert path.read_bytes() == new and transfer.downloaded == len(new)
    assert transfer.resumed_from == 0
    assert sorted(p.name for p in path.parent.iterdir()) == [HASHES_FILE, path.name]
