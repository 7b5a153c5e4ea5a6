"""scikit-learn's estimator checks on every ridge estimator."""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from brainldm.ridge import BandedRidgeCV, Ridge, RidgeCV

ESTIMATORS = [
    Ridge(),
    Ridge(alpha=0.5, fit_intercept=False, standardize_X=False, dtype="float64"),
    RidgeCV(alphas=(0.01, 1.0, 100.0), cv=3),
    RidgeCV(alphas=(0.01, 1.0), cv=3, alpha_per_target=False, scoring="r2"),
    BandedRidgeCV(alphas=(0.1, 10.0), cv=3),
]


def _expected_failed_checks(estimator):
    if estimator.dtype == "float32":
        return {
            "check_regressor_multioutput": (
                "predictions are in the working dtype, float32 by default, to halve the memory "
                "of 59,136-target decoders; dtype='float64' passes this check"
            )
        }
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)


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
