"""Running the suites end to end with random-initialised networks (code paths, not values)."""

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytest.importorskip("transformers")

from evaluation_helpers import TINY_CLIP, random_images, write_recon_folder  # noqa: E402
from PIL import Image  # noqa: E402

from brainldm.evaluation import (  # noqa: E402
    WEIGHT_FILES,
    EvaluationResult,
    build_network,
    compare_conditions,
    concat_results,
    evaluate_images,
    evaluate_reconstructions,
    extract_network_features,
    file_sha256,
    get_metrics,
    pixcorr,
    prepare_pixel_images,
    summarize,
    two_way_identification,
)

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def nets():
    names = ("alexnet", "inception_v3", "clip_vit_l14", "efficientnet_b1", "swav_resnet50")
    return {n: build_network(n, clip_config=TINY_CLIP) for n in names}


@pytest.fixture(scope="module")
def images():
    """3 originals (425 px, smooth) and 2 noisy 512-px reconstructions of each."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (3, 17, 17, 3), dtype=np.uint8)
    orig = np.stack([np.asarray(Image.fromarray(b).resize((425, 425))) for b in base])
    big = np.stack([np.asarray(Image.fromarray(o).resize((512, 512))) for o in orig])
    noise = rng.integers(-40, 40, (3, 2, 512, 512, 3))
    recon = np.clip(big[:, None].astype(int) + noise, 0, 255).astype(np.uint8)
    return orig, recon


def test_mindeye_suite_end_to_end(images, nets):
    orig, recon = images[0][:2], images[1][:2, :1]  # 2 images × 1 sample: every network runs
    result = evaluate_images(
        orig, recon, protocol="mindeye", networks=nets, nsd_ids=[7, 3], subject=1, condition="zc"
    )
    scores = result.scores
    assert list(scores.columns) == ["subject", "condition", "nsd_id", "metric", "score"]
    assert list(scores["metric"].unique()) == [m.name for m in get_metrics("mindeye")]
    assert len(scores) == 8 * 2 and scores["nsd_id"].tolist()[:2] == [3, 7]
    assert (scores["subject"] == 1).all() and (scores["condition"] == "zc").all()
    px = scores[scores["metric"] == "pixcorr"].set_index("nsd_id")["score"]
    expected = pixcorr(
        prepare_pixel_images(orig, "mindeye"), prepare_pixel_images(recon, "mindeye")
    )
    np.testing.assert_allclose(px.loc[[7, 3]].to_numpy(), expected)
    assert (px > 0.8).all()  # the reconstructions are the originals plus noise
    ident = scores[scores["metric"].isin(["alexnet2", "alexnet5", "inception", "clip"])]["score"]
    assert ident.isin([0.0, 1.0]).all()
    dist = scores[scores["metric"].isin(["effnet", "swav"])]["score"]
    assert dist.between(0, 2).all()
    meta = result.metadata
    assert meta["protocol"] == "mindeye" and meta["n_samples"] == {"zc": 1}
    assert meta["weights_sha256"]["alexnet"] == {"source": "model passed by the caller"}
    assert [m["name"] for m in meta["metrics"]] == [m.name for m in get_metrics("mindeye")]
    assert meta["metrics"][6]["higher_is_better"] is False  # effnet is a distance


def test_suite_identification_is_the_same_code_path(images, nets):
    orig, recon = images
    spec = get_metrics("takagi", ["alexnet5"])[0]
    result = evaluate_images(orig, recon, protocol="takagi", metrics=["alexnet5"], networks=nets)
    net, node, prep = nets["alexnet"], spec.node, spec.preprocessing
    feats_o = extract_network_features(orig, net, [node], prep)[node]
    feats_r = extract_network_features(recon, net, [node], prep)[node]
    expected = two_way_identification(feats_o, feats_r, "takagi").accuracy_per_image
    np.testing.assert_array_equal(result.scores["score"].to_numpy(), expected)


def test_takagi_clip_layers(images, nets):
    orig, recon = images
    result = evaluate_images(
        orig,
        recon[:, :1],
        protocol="takagi",
        metrics=["clip", "clip_h6", "clip_h12"],
        networks=nets,
    )
    assert list(result.scores["metric"].unique()) == ["clip", "clip_h6", "clip_h12"]


def test_weights_from_dir_are_hashed_and_saved(images, tmp_path):
    orig, recon = images[0][:2], images[1][:2, :1]
    weights = tmp_path / "weights"
    weights.mkdir()
    name = WEIGHT_FILES["alexnet"]
    torch.save(build_network("alexnet").state_dict(), weights / name)
    result = evaluate_images(
        orig, recon, protocol="mindeye", metrics=["ssim", "alexnet2"], weights_dir=weights,
        verify=False,
    )  # fmt: skip
    sha = file_sha256(weights / name)
    assert result.metadata["weights_sha256"] == {"alexnet": {name: sha}}
    out = result.save(tmp_path / "eval")
    assert (out / "scores.csv").is_file() and (out / "evaluation.json").is_file()
    back = EvaluationResult.load(out)
    pd.testing.assert_frame_equal(back.scores, result.scores, check_dtype=False)
    assert back.metadata == result.metadata
    assert not list(out.glob(".tmp-*"))  # atomic writes leave nothing behind


def test_evaluate_reconstructions_aligns_ids(tmp_path, nets):
    # Originals are given in another order and include an extra id; "zc" reconstructions
    # are exact copies, "c" are copies of another image: alignment must follow nsd_id.
    orig_ids = np.array([9, 2, 5, 7])
    orig = random_images((4, 40, 40, 3), 0)
    by_id = dict(zip(orig_ids.tolist(), orig, strict=True))
    recon_ids = [5, 9, 2]
    zc = {i: np.stack([by_id[i], by_id[i]]) for i in recon_ids}
    c = {i: by_id[recon_ids[(k + 1) % 3]][None] for k, i in enumerate(recon_ids)}
    write_recon_folder(tmp_path, {"zc": zc, "c": c})
    result = evaluate_reconstructions(
        tmp_path,
        orig,
        orig_ids,
        protocol="braindiffuser",
        metrics=["pixcorr", "alexnet2"],
        networks=nets,
        subject=2,
    )
    s = result.scores
    assert list(s["condition"].unique()) == ["zc", "c"]
    assert sorted(s["nsd_id"].unique()) == [2, 5, 9]
    zc_scores = s[s["condition"] == "zc"]
    np.testing.assert_allclose(zc_scores["score"], 1.0)  # pixcorr 1 and identification 100%
    c_scores = s[s["condition"] == "c"]
    assert (c_scores[c_scores["metric"] == "alexnet2"]["score"] < 1).all()
    assert result.metadata["n_samples"] == {"zc": 2, "c": 1}


def test_statistics_on_suite_output(images, nets):
    orig, recon = images
    parts = []
    for subject in (1, 5):
        for condition, rec in (("zc", recon), ("c", recon[::-1])):
            parts.append(
                evaluate_images(
                    orig,
                    rec,
                    protocol="mindeye",
                    metrics=["pixcorr"],
                    networks=nets,
                    subject=subject,
                    condition=condition,
                )
            )
    combined = concat_results(parts)
    table = summarize(combined.scores, n_bootstrap=50)
    assert set(table["subject"]) == {1, 5, "pooled"}
    assert len(table) == 6
    tests = compare_conditions(combined.scores)
    assert set(tests["subject"]) == {1, 5, "pooled"} and (tests["condition_a"] == "zc").all()
    assert tests["p_adjusted"].notna().all()
    with pytest.raises(ValueError, match="duplicated"):
        concat_results([parts[0], parts[0]])


def test_suite_errors(images, nets, tmp_path):
    orig, recon = images
    with pytest.raises(ValueError, match="reconstructions has 2 images but originals has 3"):
        evaluate_images(orig, recon[:2], protocol="mindeye", metrics=["ssim"])
    with pytest.raises(ValueError, match="evaluation needs at least 2 test images; got 1"):
        evaluate_images(orig[:1], recon[:1], protocol="mindeye", metrics=["ssim"])
    with pytest.raises(FileNotFoundError, match="weights for network 'alexnet' not found"):
        evaluate_images(orig, recon, protocol="mindeye", metrics=["alexnet2"], weights_dir=tmp_path)
    with pytest.raises(ValueError, match=r"need network 'alexnet': pass weights_dir"):
        evaluate_images(orig, recon, protocol="mindeye", metrics=["alexnet2"])
    with pytest.raises(ValueError, match="metric of protocol 'takagi'='pixcorr' is not valid"):
        evaluate_images(orig, recon, protocol="takagi", metrics=["pixcorr"])
    with pytest.raises(TypeError, match="originals must be uint8"):
        evaluate_images(orig / 255, recon, protocol="mindeye", metrics=["ssim"])
    with pytest.raises(ValueError, match="nsd_ids must be 3 distinct ids"):
        evaluate_images(orig, recon, protocol="mindeye", metrics=["ssim"], nsd_ids=[1, 1, 2])
