import subprocess
import sys

import numpy as np
import pytest
from evaluation_reference import (
    mindeye_identification_loop,
    mindeye_original,
    takagi_identification_loop,
)
from scipy.spatial.distance import correlation

from brainldm.evaluation import (
    IdentificationResult,
    correlation_distance,
    two_way_identification,
)


def _features(n=17, k=3, d=40, noise=3.0, seed=0):
    rng = np.random.default_rng(seed)
    original = rng.standard_normal((n, d))
    recon = original[:, None, :] + noise * rng.standard_normal((n, k, d))
    return original, recon


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_takagi_equals_loop_reference(k, seed):
    original, recon = _features(k=k, seed=seed)
    result = two_way_identification(original, recon, "takagi")
    expected = takagi_identification_loop(original, recon)
    np.testing.assert_array_equal(result.accuracy_per_image, expected)
    assert 0.5 < result.accuracy < 1.0  # noisy enough to have losses, better than chance


@pytest.mark.parametrize("protocol", ["mindeye", "braindiffuser"])
@pytest.mark.parametrize("k", [1, 3])
def test_mindeye_equals_loop_reference(protocol, k):
    original, recon = _features(k=k, seed=2)
    result = two_way_identification(original, recon, protocol)
    np.testing.assert_array_equal(
        result.accuracy_per_image, mindeye_identification_loop(original, recon)
    )
    assert result.protocol == protocol and result.n_samples == k


def test_mindeye_single_sample_equals_mindeye_code():
    original, recon = _features(n=25, k=1, seed=3)
    result = two_way_identification(original, recon[:, 0], "mindeye")
    np.testing.assert_array_equal(
        result.accuracy_per_image, mindeye_original(original, recon[:, 0])
    )


def test_orientations_differ():
    # The protocols are transposed: they agree in expectation, not per image.
    original, recon = _features(n=30, k=1, seed=4)
    a = two_way_identification(original, recon, "takagi").accuracy_per_image
    b = two_way_identification(original, recon, "mindeye").accuracy_per_image
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("block_size", [1, 4, 1000])
@pytest.mark.parametrize("protocol", ["takagi", "mindeye"])
def test_block_size_and_dtype_do_not_change_result(block_size, protocol):
    original, recon = _features(n=13, seed=5)
    ref = two_way_identification(original, recon, protocol).accuracy_per_image
    got = two_way_identification(original, recon, protocol, block_size=block_size)
    np.testing.assert_array_equal(got.accuracy_per_image, ref)
    f32 = two_way_identification(original.astype(np.float32), recon.astype(np.float32), protocol)
    np.testing.assert_array_equal(f32.accuracy_per_image, ref)


@pytest.mark.parametrize("protocol", ["takagi", "mindeye"])
def test_perfect_features_give_100_percent(protocol):
    rng = np.random.default_rng(6)
    original = rng.standard_normal((50, 30))
    recon = np.repeat(original[:, None], 4, axis=1)
    result = two_way_identification(original, recon, protocol)
    assert result.accuracy == 1.0
    assert np.all(result.accuracy_per_image == 1.0)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("protocol", ["takagi", "mindeye"])
def test_shuffled_features_give_chance(protocol, seed):
    # Reconstructions of *other* images: accuracy ~ 0.5. Bound: 3 binomial standard
    # deviations sqrt(0.25 / n), as if each image were one fair coin; the per-image
    # accuracy averages n - 1 comparisons, so its spread is smaller (over 200 seeds of
    # independent features the observed sd is 0.028 for takagi and 0.016 for mindeye).
    n = 100
    original, recon = _features(n=n, k=3, d=64, noise=0.5, seed=seed)
    perm = np.roll(np.arange(n), 1 + seed)  # a derangement: no image keeps its own
    accuracy = two_way_identification(original, recon[perm], protocol).accuracy
    assert abs(accuracy - 0.5) <= 3 * np.sqrt(0.25 / n)


def _balanced(*signs):
    """A ±1 vector with zero mean: standardised exactly to ±0.5, so correlations are exact."""
    return np.array(signs, dtype=float)


def test_ties_count_as_losses_takagi():
    # Every reconstruction is the same vector g: M[i, i] == M[i, j] exactly for all j.
    originals = np.stack(
        [_balanced(1, -1, 1, -1), _balanced(1, 1, -1, -1), _balanced(1, -1, -1, 1)]
    )
    g = _balanced(1, 1, -1, -1)
    recon = np.broadcast_to(g, (3, 2, 4)).copy()
    result = two_way_identification(originals, recon, "takagi")
    np.testing.assert_array_equal(result.accuracy_per_image, [0, 0, 0])
    np.testing.assert_array_equal(takagi_identification_loop(originals, recon), [0, 0, 0])


def test_ties_count_as_losses_mindeye():
    # Originals 0 and 1 are identical: every comparison between them is a tie.
    a, b = _balanced(1, -1, 1, -1), _balanced(1, 1, -1, -1)
    originals = np.stack([a, a, b])
    recon = np.stack([a, a, b])
    result = two_way_identification(originals, recon, "mindeye")
    # image 0: beats 2, ties 1 -> 1/2; image 1: the same; image 2: beats both.
    np.testing.assert_array_equal(result.accuracy_per_image, [0.5, 0.5, 1.0])
    np.testing.assert_array_equal(mindeye_original(originals, recon), [0.5, 0.5, 1.0])
    np.testing.assert_array_equal(
        mindeye_identification_loop(originals, recon[:, None]), [0.5, 0.5, 1.0]
    )


def test_constant_features_warn_and_lose():
    original, recon = _features(n=6, k=2, noise=0.1, seed=7)
    recon[2] = 1.0  # a blank reconstruction: constant features
    with pytest.warns(UserWarning, match="2 feature vector.*constant.*counts as a loss"):
        result = two_way_identification(original, recon, "mindeye")
    assert result.accuracy_per_image[2] == 0.0
    assert np.all(np.delete(result.accuracy_per_image, 2) == 1.0)


def test_result_fields():
    original, recon = _features(n=5, k=2)
    result = two_way_identification(original, recon, feature_name="alexnet2")
    assert isinstance(result, IdentificationResult)
    assert result.n_images == 5 and result.feature_name == "alexnet2"
    assert result.accuracy_per_image.shape == (5,)
    assert np.all(result.accuracy_per_image * 4 == np.round(result.accuracy_per_image * 4))


def test_error_mismatched_image_counts():
    original, recon = _features(n=5)
    with pytest.raises(
        ValueError, match="reconstructed_features has 4 images but original_features has 5"
    ):
        two_way_identification(original, recon[:4])


def test_error_fewer_than_two_images():
    original, recon = _features(n=1)
    with pytest.raises(ValueError, match="needs at least 2 test images; got 1"):
        two_way_identification(original, recon)


def test_error_feature_mismatch_shape_protocol_and_values():
    original, recon = _features(n=4)
    with pytest.raises(ValueError, match="40 features per image but original_features has 39"):
        two_way_identification(original[:, :39], recon)
    with pytest.raises(
        ValueError, match=r"original_features must have shape \(n_images, n_features\)"
    ):
        two_way_identification(original[:, :, None], recon)
    with pytest.raises(ValueError, match="reconstructed_features must have shape"):
        two_way_identification(original, recon[..., None])
    with pytest.raises(ValueError, match="protocol='bdpy' is not valid; allowed: 'takagi'"):
        two_way_identification(original, recon, "bdpy")
    bad = recon.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="reconstructed_features contains NaN"):
        two_way_identification(original, bad)


def test_correlation_distance_equals_scipy():
    original, recon = _features(n=6, k=3, seed=8)
    got = correlation_distance(original, recon)
    expected = [
        np.mean([correlation(original[i], recon[i, k]) for k in range(3)]) for i in range(6)
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(
        correlation_distance(original, recon[:, 0]),
        [correlation(a, b) for a, b in zip(original, recon[:, 0], strict=True)],
        rtol=1e-12,
    )


def test_identification_needs_no_torch():
    code = (
        "import sys, numpy as np; from brainldm.evaluation import two_way_identification; "
        "r = two_way_identification(np.eye(3) + 1, np.eye(3)[:, None] + 1); "
        "print(r.accuracy, [m for m in ('torch', 'torchvision', 'transformers', 'PIL') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1.0", "[]"]
