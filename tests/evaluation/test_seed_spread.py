"""Agreement between runs that differ only in their seed."""

import numpy as np
import pandas as pd
import pytest

from brainldm.encoding import map_agreement
from brainldm.evaluation import seed_spread


def _summary(values):
    rows = [{"subject": s, "condition": c, "metric": "alex2", "mean": v + (0.1 if s == 1 else 0)}
            for c, v in values.items() for s in (1, "pooled")]  # fmt: skip
    return pd.DataFrame(rows)


def test_seed_spread_reads_the_pooled_rows():
    table = seed_spread({42: _summary({"z": 0.6, "zc": 0.8}), 7: _summary({"z": 0.7, "zc": 0.8})})
    row = table.set_index("condition").loc["z"]
    assert (row.mean_seed42, row.mean_seed7) == (0.6, 0.7)  # pooled, not subject 1's
    assert row["mean"] == pytest.approx(0.65) and row["range"] == pytest.approx(0.1)
    assert row["sd"] == pytest.approx(np.std([0.6, 0.7], ddof=1))
    assert table.set_index("condition").loc["zc", "range"] == 0
    with pytest.raises(ValueError, match="at least two seeds"):
        seed_spread({42: _summary({"z": 0.6})})


def test_map_agreement_against_direct_computation():
    rng = np.random.default_rng(0)
    r_a = rng.standard_normal(500)
    r_b = r_a + 0.3 * rng.standard_normal(500)
    a, b = r_a > 1, r_b > 1
    out = map_agreement(r_a, a, r_b, b)
    assert out["r_correlation"] == pytest.approx(np.corrcoef(r_a, r_b)[0, 1])
    assert out["dice"] == pytest.approx(2 * (a & b).sum() / (a.sum() + b.sum()))
    assert (out["n_significant_a"], out["n_significant_b"]) == (a.sum(), b.sum())
    same = map_agreement(r_a, a, r_a, a)
    assert same["r_correlation"] == pytest.approx(1) and same["dice"] == 1
    none = np.zeros(500, bool)
    assert np.isnan(map_agreement(r_a, none, r_b, none)["dice"])  # nothing to overlap
    with pytest.raises(ValueError, match="differ in shape"):
        map_agreement(r_a, a, r_b[:10], b[:10])
