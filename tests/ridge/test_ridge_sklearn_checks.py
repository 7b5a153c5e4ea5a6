"""scikit-learn's estimator checks on every ridge estimator.

The checks are about the API, and their numerical tolerances (1e-7 and below)
are float64 ones: a float32 fit summed in another order by another BLAS kernel
differs by about 1e-7 relative, so a float32 run of them passes or fails by
machine. They therefore run on the float64 estimators; what the float32 default
promises is tested below at float32 tolerances, on the same invariances.
"""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from brainldm.ridge import BandedRidgeCV, Ridge, RidgeCV

ESTIMATORS = [
    Ridge(),
    Ridge(alpha=0.5, fit_intercept=False, standardize_X=False),
    RidgeCV(alphas=(0.01, 1.0, 100.0), cv=3),
    RidgeCV(alphas=(0.01, 1.0), cv=3, alpha_per_target=False, scoring="r2"),
    BandedRidgeCV(alphas=(0.1, 10.0), cv=3),
]
FLOAT64 = [clone(e).set_params(dtype="float64") for e in ESTIMATORS]
FLOAT32 = [clone(e).set_params(dtype="float32") for e in ESTIMATORS]

# float32 keeps about 7 significant digits; results of the same fit summed in
# another order agree to a few units in the last place, so 1e-4 relative holds
# on any BLAS kernel and still fails for a wrong row order or a lost target.
RTOL32, ATOL32 = 1e-4, 1e-4


@parametrize_with_checks(FLOAT64)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def _problem(n=60, p=6, t=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    Y = X @ rng.standard_normal((p, t)) + 0.5 * rng.standard_normal((n, t)) + 1.0
    return X, Y


def _ids(estimators):
    return [repr(e).replace(" ", "").replace("\n", "") for e in estimators]


@pytest.mark.parametrize("estimator", FLOAT32, ids=_ids(FLOAT32))
def test_float32_predictions_are_invariant_to_row_order_and_subsets(estimator):
    X, Y = _problem()
    model = clone(estimator).fit(X, Y)
    pred = model.predict(X)
    assert pred.dtype == np.float32
    perm = np.random.default_rng(1).permutation(len(X))
    np.testing.assert_allclose(model.predict(X[perm]), pred[perm], rtol=RTOL32, atol=ATOL32)
    np.testing.assert_allclose(model.predict(X[7:19]), pred[7:19], rtol=RTOL32, atol=ATOL32)


@pytest.mark.parametrize(("estimator32", "estimator64"), list(zip(FLOAT32, FLOAT64, strict=True)),
                         ids=_ids(FLOAT32))  # fmt: skip
def test_float32_fit_equals_float64_fit_to_float32_precision(estimator32, estimator64):
    X, Y = _problem(seed=2)
    fit32 = clone(estimator32).fit(X, Y)
    fit64 = clone(estimator64).fit(X, Y)
    np.testing.assert_allclose(fit32.predict(X), fit64.predict(X), rtol=RTOL32, atol=ATOL32)
    if not estimator32.get_params().get("alpha_per_target", True):
        return  # one alpha shared by all targets: a single-target fit may choose another
    # Multi-output equals one fit per target.
    for j in range(Y.shape[1]):
        single = clone(estimator32).fit(X, Y[:, j]).predict(X)
        np.testing.assert_allclose(single, fit32.predict(X)[:, j], rtol=RTOL32, atol=ATOL32)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_parameters_and_attributes_are_documented(estimator):
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((30, 4)), rng.standard_normal((30, 2))
    doc = type(estimator).__doc__
    names = list(estimator.get_params()) + [
        name for name in vars(estimator.fit(X, Y)) if name.endswith("_") and name[0] != "_"
    ]
    undocumented = [n for n in names if f"\n    {n} : " not in doc]
    assert undocumented == [], f"{type(estimator).__name__} lacks docs for {undocumented}"
