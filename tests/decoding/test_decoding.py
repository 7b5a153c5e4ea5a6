"""brainldm.decoding against a direct ridge fit, a loop, and planted truth."""

import numpy as np
import pytest

from brainldm.config import DecodingConfig
from brainldm.decoding import (
    DecodedLatents,
    fit_decoders,
    make_latent_decoder,
    per_image_correlation,
)


@pytest.fixture(scope="module")
def split(fake_nsd, tmp_path_factory):
    from brainldm.nsd import NSDLayout, prepare_subject

    split, _ = prepare_subject(NSDLayout(fake_nsd.root), 1, tmp_path_factory.mktemp("prep"),
                               rois=("early", "ventral"), split="modern")  # fmt: skip
    return split


def _planted(split, seed=0):
    """z and c that are linear in the early and ventral betas of each image (plus noise)."""
    rng = np.random.default_rng(seed)
    ids = np.unique(np.concatenate([split.train_nsd_ids, split.test_nsd_ids]))
    z_w = rng.standard_normal((split.train_betas["early"].shape[1], 2 * 3 * 3))
    c_w = rng.standard_normal((split.train_betas["ventral"].shape[1], 4 * 5))

    def rows(betas, nsd_ids, w, shape):
        return (betas @ w).reshape(len(nsd_ids), *shape).astype(np.float32)

    train = {"image_latents": rows(split.train_betas["early"], split.train_nsd_ids, z_w, (2, 3, 3)),
             "text_embeddings": rows(split.train_betas["ventral"], split.train_nsd_ids, c_w,
                                     (4, 5))}  # fmt: skip
    test = {
        "image_latents": rows(split.test_betas["early"], split.test_nsd_ids, z_w, (2, 3, 3)),
        "text_embeddings": rows(split.test_betas["ventral"], split.test_nsd_ids, c_w, (4, 5)),
    }
    return ids, train, test


@pytest.mark.parametrize("grouped", [False, True])
def test_decoders_equal_a_direct_ridge_fit(split, grouped):
    _, train, test = _planted(split)
    config = DecodingConfig(alphas=(0.1, 10.0, 1e3), grouped_folds=grouped, fit_intercept=True)
    decoders = fit_decoders(split, train, config=config)
    decoded = decoders.decode(split, test)
    for target, roi in (("image_latents", "early"), ("text_embeddings", "ventral")):
        model = make_latent_decoder(config)
        Y = train[target].reshape(len(train[target]), -1)
        model.fit(split.train_betas[roi], Y, groups=split.train_nsd_ids if grouped else None)
        expected = model.predict(split.test_betas[roi]).astype(np.float32)
        np.testing.assert_array_equal(decoded._get(target).reshape(len(expected), -1), expected)
        assert decoded._get(target).shape[1:] == train[target].shape[1:]
    np.testing.assert_array_equal(decoded.nsd_ids, split.test_nsd_ids)
    assert decoded.settings["decoding"]["grouped_folds"] is grouped
    assert decoded.settings["rois"] == {"image_latents": "early", "text_embeddings": "ventral"}


def test_scores_are_per_image_correlations_and_find_the_planted_signal(split):
    _, train, test = _planted(split)
    decoded = fit_decoders(split, train, config=DecodingConfig(alphas=(1e-3, 1.0, 1e3))).decode(
        split, test
    )
    for target in ("image_latents", "text_embeddings"):
        truth = test[target].reshape(len(test[target]), -1)
        pred = decoded._get(target).reshape(len(truth), -1)
        loop = [np.corrcoef(truth[i], pred[i])[0, 1] for i in range(len(truth))]
        np.testing.assert_allclose(decoded.scores[target], loop, rtol=1e-5, atol=1e-6)
        assert np.mean(loop) > 0.9  # linear truth, more trials than voxels per target
    assert decoded.mean_scores() == {k: float(np.mean(v)) for k, v in decoded.scores.items()}


def test_per_image_correlation_on_constant_and_anticorrelated_rows():
    truth = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0], [1.0, 2.0, 4.0]])
    pred = np.array([[2.0, 4.0, 6.0], [0.0, 1.0, 2.0], [3.0, 2.0, 0.0]])
    np.testing.assert_allclose(
        per_image_correlation(truth, pred),
        [1.0, 0.0, np.corrcoef(truth[2], pred[2])[0, 1]],
        atol=1e-12,
    )


def test_decoded_latents_round_trip_and_select(tmp_path):
    rng = np.random.default_rng(0)
    decoded = DecodedLatents(
        np.array([5, 3, 9]),
        rng.standard_normal((3, 4, 2, 2)).astype("f4"),
        rng.standard_normal((3, 7, 3)).astype("f4"),
        {"image_latents": np.array([0.1, 0.2, 0.3])},
        {"subject": 1},
    )
    path = decoded.save(tmp_path / "sub" / "d.npz")
    back = DecodedLatents.load(path)
    for name in ("nsd_ids", "image_latents", "text_embeddings"):
        np.testing.assert_array_equal(getattr(back, name), getattr(decoded, name))
    np.testing.assert_array_equal(back.scores["image_latents"], [0.1, 0.2, 0.3])
    assert back.settings == {"subject": 1}
    part = back.select(1, 3)
    np.testing.assert_array_equal(part.nsd_ids, [3, 9])
    np.testing.assert_array_equal(part.text_embeddings, decoded.text_embeddings[1:])
    # an archive with only the arrays (as brainldm wrote them before) still loads
    np.savez(tmp_path / "old.npz", nsd_ids=[1, 2], image_latents=np.zeros((2, 4, 2, 2)),
             text_embeddings=np.zeros((2, 7, 3)))  # fmt: skip
    old = DecodedLatents.load(tmp_path / "old.npz")
    assert old.settings == {} and old.scores == {} and len(old) == 2


def test_bad_decoded_files_and_inputs_are_named(tmp_path, split):
    with pytest.raises(FileNotFoundError, match="none.npz"):
        DecodedLatents.load(tmp_path / "none.npz")
    np.savez(tmp_path / "x.npz", ids=[1])
    with pytest.raises(ValueError, match=r"x.npz' lacks the array\(s\) \['nsd_ids'\]"):
        DecodedLatents.load(tmp_path / "x.npz")
    with pytest.raises(ValueError, match="image_latents has 2 rows but nsd_ids has 3"):
        DecodedLatents([1, 2, 3], np.zeros((2, 4)))
    _, train, _ = _planted(split)
    with pytest.raises(ValueError, match=r"unknown target\(s\) \['z'\]"):
        fit_decoders(split, {"z": train["image_latents"]})
    with pytest.raises(ValueError, match=r"rois\['image_latents'\]='nsdgeneral' is not an ROI"):
        fit_decoders(split, train, rois={"image_latents": "nsdgeneral",
                                         "text_embeddings": "ventral"})  # fmt: skip
    with pytest.raises(ValueError, match=r"features\['image_latents'\] has 3 rows"):
        fit_decoders(split, {"image_latents": train["image_latents"][:3]})


class _Store:
    """The ``get`` of a FeatureStore over planted rows, counting the rows it reads."""

    def __init__(self, ids, rows):
        self.where = {int(i): k for k, i in enumerate(ids)}
        self.rows, self.n_read = rows, 0

    def get(self, ids):
        self.n_read += len(ids)
        return self.rows[[self.where[int(i)] for i in ids]]


def test_targets_from_a_store_are_read_once_per_image_and_equal_the_expanded_fit(split):
    # c of ~25,000 trials is never expanded: each distinct image is read once and the
    # ridge reads its targets a batch of columns at a time (IndexedRows).
    _, train, _ = _planted(split)
    ids, first, inverse = np.unique(split.train_nsd_ids, return_index=True, return_inverse=True)
    store = _Store(ids, train["text_embeddings"][first])
    config = DecodingConfig(alphas=(0.1, 10.0, 1e3), grouped_folds=True)
    from_store = fit_decoders(split, {"text_embeddings": store}, config=config)
    assert store.n_read == len(ids) < len(split.train_nsd_ids)
    per_trial = store.rows[inverse]  # one image's features repeat over its trials
    expanded = fit_decoders(split, {"text_embeddings": per_trial}, config=config)
    a, b = from_store.models["text_embeddings"], expanded.models["text_embeddings"]
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.best_alphas_, b.best_alphas_)
    assert from_store.shapes == expanded.shapes == {"text_embeddings": (4, 5)}
