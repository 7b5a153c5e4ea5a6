import tracemalloc

import numpy as np
import pytest

from brainldm.encoding import _pca
from brainldm.encoding._pca import streamed_pca

# Scores are float32: compare each column to 1e-4 of its largest |value| (measured ~1e-7).
SCORE_RTOL = 1e-4


def _planted(n_train, n_test, n_features, rank=12, noise=0.1, seed=0):
    """Rows = latent factors with a clearly decaying spectrum (0.7^i) + small noise."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    latent = rng.standard_normal((n, rank)) * 0.7 ** np.arange(rank)
    loadings, _ = np.linalg.qr(rng.standard_normal((n_features, rank)))
    X = latent @ loadings.T * np.sqrt(n_features) + noise * rng.standard_normal((n, n_features))
    X += rng.uniform(-3, 3, n_features)  # features with different means
    X *= rng.uniform(0.1, 10, n_features)  # ... and scales
    return X[:n_train], X[n_train:]


def _standardise(X_train, X_test):
    """What reduce_features does, in float64."""
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    std[std == 0] = 1.0
    return (X_train - mean) / std, (X_test - mean) / std


def _assert_columns_close(actual, expected, rtol=SCORE_RTOL, signed=False):
    """Each column equal, up to its sign unless ``signed``, to rtol × its largest |value|."""
    assert actual.shape == expected.shape
    expected = np.asarray(expected, dtype=np.float64)
    if not signed:
        expected = expected * np.where((actual * expected).sum(axis=0) < 0, -1.0, 1.0)
    scale = np.abs(expected).max(axis=0)
    err = np.abs(actual - expected).max(axis=0)
    assert np.all(err <= rtol * scale), (err / scale).max()


def _sklearn_full(X_train, X_test, k):
    from sklearn.decomposition import PCA

    S_train, S_test = _standardise(X_train, X_test)
    pca = PCA(n_components=k, svd_solver="full").fit(S_train)
    test = pca.transform(S_test) if len(S_test) else np.empty((0, k))
    return pca.transform(S_train), test, pca.explained_variance_


class ColumnCounter:
    """A numpy array read only as X[:, a:b], counting how often each column is read."""

    def __init__(self, array):
        self.array = array
        self.shape = array.shape
        self.reads = np.zeros(array.shape[1], dtype=int)

    def __getitem__(self, key):
        rows, cols = key
        assert rows == slice(None) and isinstance(cols, slice) and cols.step is None, key
        self.reads[cols] += 1
        return self.array[:, cols].copy()


@pytest.mark.parametrize(
    ("n_train", "n_test", "n_features", "method"),
    [(80, 30, 500, "gram"), (300, 40, 60, "covariance")],
)
def test_equals_sklearn_full_pca(n_train, n_test, n_features, method):
    k = 8
    X_train, X_test = _planted(n_train, n_test, n_features)
    ref_train, ref_test, ref_var = _sklearn_full(X_train, X_test, k)
    assert np.all(ref_var[1:] / ref_var[:-1] < 0.9)  # distinct eigenvalues, so comparable

    result = streamed_pca(X_train, X_test, k, block_size=37)
    assert result.method == method
    assert result.train.dtype == result.test.dtype == np.float32
    assert result.explained_variance.dtype == np.float64
    assert result.train.shape == (n_train, k) and result.test.shape == (n_test, k)
    _assert_columns_close(result.train, ref_train)
    _assert_columns_close(result.test, ref_test)
    np.testing.assert_allclose(result.explained_variance, ref_var, rtol=1e-8)
    # standardised features: each non-constant one has variance n / (n - 1)
    np.testing.assert_allclose(result.total_variance, n_features * n_train / (n_train - 1))
    np.testing.assert_allclose(result.explained_variance_ratio, ref_var / result.total_variance)


@pytest.mark.parametrize("n_features", [300, 50])  # gram, covariance
def test_sign_is_deterministic(n_features):
    X_train, X_test = _planted(100, 10, n_features, seed=3)
    train = streamed_pca(X_train, X_test, 6).train
    peaks = train[np.argmax(np.abs(train), axis=0), np.arange(6)]
    assert np.all(peaks > 0)
    np.testing.assert_array_equal(train, streamed_pca(X_train, X_test, 6, block_size=11).train)


@pytest.mark.parametrize("n_features", [200, 40])  # gram, covariance
@pytest.mark.parametrize("block_size", [1, 2, 7])
def test_block_size_invariance(n_features, block_size):
    X_train, X_test = _planted(60, 15, n_features, seed=1)
    whole = streamed_pca(X_train, X_test, 10, block_size=n_features)
    blocked = streamed_pca(X_train, X_test, 10, block_size=block_size)
    assert whole.block_size == n_features and blocked.block_size == block_size
    _assert_columns_close(blocked.train, whole.train, rtol=1e-6, signed=True)
    _assert_columns_close(blocked.test, whole.test, rtol=1e-6, signed=True)
    np.testing.assert_allclose(blocked.explained_variance, whole.explained_variance, rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("n_components", [5, None])
def test_h5py_dataset_equals_numpy(tmp_path, dtype, n_components):
    h5py = pytest.importorskip("h5py")
    X_train, X_test = (X.astype(dtype) for X in _planted(70, 12, 400, seed=2))
    with h5py.File(tmp_path / "features.h5", "w") as f:
        f.create_dataset("train", data=X_train, chunks=(70, 16), compression="gzip")
        f.create_dataset("test", data=X_test, chunks=(12, 16))
    with h5py.File(tmp_path / "features.h5", "r") as f:
        from_disk = streamed_pca(f["train"], f["test"], n_components, block_size=50)
    in_memory = streamed_pca(X_train, X_test, n_components, block_size=50)
    _assert_columns_close(from_disk.train, in_memory.train, rtol=1e-6, signed=True)
    _assert_columns_close(from_disk.test, in_memory.test, rtol=1e-6, signed=True)
    np.testing.assert_allclose(from_disk.explained_variance, in_memory.explained_variance)
    if n_components is not None:  # and float16 values are PCA'd as such (computed in float64)
        ref_train, _, ref_var = _sklearn_full(X_train.astype(np.float64), X_test, 5)
        _assert_columns_close(from_disk.train, ref_train)
        np.testing.assert_allclose(from_disk.explained_variance, ref_var, rtol=1e-8)


def test_streams_in_bounded_memory(tmp_path, monkeypatch):
    h5py = pytest.importorskip("h5py")
    n_train, n_test, n_features = 100, 20, 20_000
    rng = np.random.default_rng(4)
    with h5py.File(tmp_path / "big.h5", "w") as f:
        for name, n in (("train", n_train), ("test", n_test)):
            f.create_dataset(name, data=rng.standard_normal((n, n_features)).astype(np.float16),
                             chunks=(n, 500))  # fmt: skip
    x_bytes = (n_train + n_test) * n_features * 8  # X as float64: 19.2 MB
    gram_bytes = n_train * n_train * 8  # 80 kB
    assert x_bytes > 100 * gram_bytes
    # default block size from a (patched) budget of 500 float64 columns
    monkeypatch.setattr(_pca, "BLOCK_BUDGET_BYTES", 500 * (n_train + n_test) * 8)
    with h5py.File(tmp_path / "big.h5", "r") as f:
        tracemalloc.start()
        try:
            result = streamed_pca(f["train"], f["test"], 20)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert result.block_size == 500 and result.method == "gram"
    assert peak < x_bytes / 8, (peak, x_bytes)


@pytest.mark.parametrize(
    ("n_features", "n_components", "method"),
    [(90, 6, "gram"), (25, 6, "covariance"), (25, None, "none"), (25, 25, "none")],
)
def test_every_column_read_once(n_features, n_components, method):
    X_train, X_test = _planted(40, 9, n_features, seed=5)
    train, test = ColumnCounter(X_train), ColumnCounter(X_test)
    result = streamed_pca(train, test, n_components, block_size=7)
    assert result.method == method
    assert np.all(train.reads == 1) and np.all(test.reads == 1)


@pytest.mark.parametrize("n_components", [None, 30, 1000])
def test_no_pca_returns_standardised_features(n_components):
    X_train, X_test = _planted(50, 10, 30, seed=6)
    result = streamed_pca(X_train, X_test, n_components, block_size=4)
    S_train, S_test = _standardise(X_train, X_test)
    assert result.method == "none"
    assert result.train.dtype == result.test.dtype == np.float32
    np.testing.assert_allclose(result.train, S_train, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(result.test, S_test, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(result.explained_variance, S_train.var(axis=0, ddof=1))


@pytest.mark.parametrize("n_features", [200, 30])  # gram, covariance
def test_rank_deficient_input_gives_finite_zero_scores(n_features):
    rng = np.random.default_rng(7)
    n_train, rank = 40, 3
    X = rng.standard_normal((n_train + 10, rank)) @ rng.standard_normal((rank, n_features))
    X_train, X_test = X[:n_train], X[n_train:]
    result = streamed_pca(X_train, X_test, 10)
    assert np.isfinite(result.train).all() and np.isfinite(result.test).all()
    # components beyond the rank: 0 (sklearn's would be noise), the rest as sklearn's
    assert np.all(result.train[:, rank:] == 0) and np.all(result.test[:, rank:] == 0)
    assert np.all(result.explained_variance[rank:] == 0)
    ref_train, ref_test, ref_var = _sklearn_full(X_train, X_test, rank)
    _assert_columns_close(result.train[:, :rank], ref_train)
    _assert_columns_close(result.test[:, :rank], ref_test)
    np.testing.assert_allclose(result.explained_variance[:rank], ref_var, rtol=1e-8)


def test_as_many_components_as_training_rows():
    # k = n_train: the last component lies beyond the rank of the centred rows
    X_train, X_test = _planted(20, 5, 100, rank=30, seed=8)
    result = streamed_pca(X_train, X_test, 50)
    assert result.train.shape == (20, 20) and result.method == "gram"
    assert np.isfinite(result.test).all()
    assert np.all(result.train[:, -1] == 0) and np.all(result.test[:, -1] == 0)
    np.testing.assert_allclose(result.explained_variance, result.train.var(axis=0, ddof=1),
                               rtol=1e-5, atol=1e-6)  # fmt: skip


@pytest.mark.parametrize("n_features", [200, 30])  # gram, covariance
def test_constant_features_are_ignored(n_features):
    X_train, X_test = _planted(60, 10, n_features, seed=9)
    constants = np.array([1 / 3, 7.7, -2.1e5, 0.0, np.float16(0.1)])
    at = np.array([0, 5, 17, 18, n_features + 4])  # positions in the widened X
    wide_train = np.insert(X_train, at - np.arange(len(at)), constants, axis=1)
    wide_test = np.insert(X_test, at - np.arange(len(at)), constants + 1.0, axis=1)
    assert np.all(wide_train[:, at] == constants)

    with_constants = streamed_pca(wide_train, wide_test, 6, block_size=3)
    without = streamed_pca(X_train, X_test, 6, block_size=3)
    _assert_columns_close(with_constants.train, without.train, rtol=1e-6, signed=True)
    _assert_columns_close(with_constants.test, without.test, rtol=1e-6, signed=True)
    np.testing.assert_allclose(with_constants.total_variance, without.total_variance)

    standardised = streamed_pca(wide_train, wide_test, None, block_size=3)
    assert np.all(standardised.train[:, at] == 0)
    np.testing.assert_allclose(standardised.test[:, at], 1.0, rtol=1e-6)
    assert np.all(standardised.explained_variance[at] == 0)


def test_all_constant_features_give_zero_scores():
    X_train, X_test = np.full((10, 30), 2.5), np.zeros((3, 30))
    result = streamed_pca(X_train, X_test, 4)
    assert np.all(result.train == 0) and np.all(result.test == 0)
    assert np.all(result.explained_variance == 0) and result.total_variance == 0
    assert np.all(result.explained_variance_ratio == 0)


def test_no_test_rows():
    X_train, _ = _planted(30, 0, 80, seed=10)
    result = streamed_pca(X_train, np.empty((0, 80)), 5)
    assert result.test.shape == (0, 5)
    ref_train, _, _ = _sklearn_full(X_train, np.empty((0, 80)), 5)
    _assert_columns_close(result.train, ref_train)


def test_does_not_modify_the_input():
    X_train, X_test = _planted(30, 5, 60, seed=11)
    before = X_train.copy(), X_test.copy()
    for n_components in (5, None):
        streamed_pca(X_train, X_test, n_components, block_size=60)
        np.testing.assert_array_equal(X_train, before[0])
        np.testing.assert_array_equal(X_test, before[1])


@pytest.mark.parametrize(
    ("X_train", "X_test", "kwargs", "match"),
    [
        (np.zeros((5, 4)), np.zeros((2, 3)), {}, r"same number of features.*\(5, 4\).*\(2, 3\)"),
        (np.zeros(5), np.zeros((2, 5)), {}, r"X_train must be 2-D.*\(5,\)"),
        ([[1.0, 2.0]] * 3, np.zeros((2, 2)), {}, "X_train must be 2-D.*list"),
        (np.zeros((1, 4)), np.zeros((2, 4)), {}, "at least 2 rows.*got 1"),
        (np.zeros((5, 4)), np.zeros((2, 4)), {"n_components": 0}, "n_components.*0"),
        (np.zeros((5, 4)), np.zeros((2, 4)), {"block_size": 0}, "block_size.*0"),
        (np.zeros((5, 4)), np.zeros((2, 4)), {"progress": "yes"}, "progress"),
    ],
)
def test_bad_input_is_refused(X_train, X_test, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        streamed_pca(X_train, X_test, kwargs.pop("n_components", 2), **kwargs)


@pytest.mark.parametrize("which", ["train", "test"])
def test_non_finite_values_are_refused(which):
    X_train, X_test = _planted(20, 5, 40, seed=12)
    (X_train if which == "train" else X_test)[1, 33] = np.nan
    with pytest.raises(ValueError, match=f"X_{which} has NaN or inf values in columns 30:40"):
        streamed_pca(X_train, X_test, 3, block_size=10)
