import numpy as np
import pandas as pd
import pytest
from scipy.stats import wilcoxon

from brainldm.evaluation import (
    adjust_pvalues,
    bootstrap_ci,
    compare_conditions,
    save_table,
    summarize,
)


def _scores(subjects=(1, 2), n=30, seed=0):
    """Long-format scores: zc > c > z on average, per subject."""
    rng = np.random.default_rng(seed)
    rows = []
    difficulty = rng.normal(0, 0.1, n)  # shared by subjects: the same test images
    for subject in subjects:
        for condition, shift in (("zc", 0.8), ("z", 0.6), ("c", 0.75)):
            for metric in ("alexnet2", "clip"):
                score = shift + difficulty + rng.normal(0, 0.05, n)
                rows.append(
                    pd.DataFrame(
                        dict(
                            subject=subject,
                            condition=condition,
                            nsd_id=np.arange(n) * 3,
                            metric=metric,
                            score=score,
                        )
                    )
                )
    return pd.concat(rows, ignore_index=True)


def test_bootstrap_ci_seeded_and_sensible():
    values = np.random.default_rng(1).normal(0.7, 0.1, 200)
    a = bootstrap_ci(values, n_bootstrap=2000, random_state=3)
    assert a == bootstrap_ci(values, n_bootstrap=2000, random_state=3)
    assert a != bootstrap_ci(values, n_bootstrap=2000, random_state=4)
    low, high = a
    assert low < values.mean() < high
    half = 1.96 * values.std() / np.sqrt(200)  # normal-theory half width
    assert (high - low) / 2 == pytest.approx(half, rel=0.15)
    wider = bootstrap_ci(values, n_bootstrap=2000, confidence=0.99, random_state=3)
    assert wider[0] < low and wider[1] > high
    assert np.isnan(bootstrap_ci([np.nan])[0])
    with pytest.raises(ValueError, match="confidence must be in"):
        bootstrap_ci(values, confidence=95)


def test_summarize_per_subject_and_pooled():
    scores = _scores()
    table = summarize(scores, n_bootstrap=200)
    assert list(table.columns) == [
        "subject",
        "condition",
        "metric",
        "n_images",
        "mean",
        "ci_low",
        "ci_high",
    ]
    assert len(table) == 3 * 3 * 2  # (2 subjects + pooled) × 3 conditions × 2 metrics
    row = table[(table.subject == 2) & (table.condition == "z") & (table.metric == "clip")].iloc[0]
    sel = scores[(scores.subject == 2) & (scores.condition == "z") & (scores.metric == "clip")]
    assert row["mean"] == pytest.approx(sel["score"].mean()) and row["n_images"] == 30
    assert row["ci_low"] < row["mean"] < row["ci_high"]
    pooled = table[
        (table.subject == "pooled") & (table.condition == "z") & (table.metric == "clip")
    ]
    both = scores[(scores.condition == "z") & (scores.metric == "clip")]
    assert pooled["mean"].iloc[0] == pytest.approx(both.groupby("nsd_id")["score"].mean().mean())
    assert pooled["n_images"].iloc[0] == 30  # images, not subject × image pairs
    single = summarize(scores[scores.subject == 1], n_bootstrap=50)
    assert "pooled" not in set(single["subject"])


def test_compare_conditions_matches_scipy():
    scores = _scores()
    table = compare_conditions(scores, metrics=["clip"], correction="none")
    assert list(zip(table.condition_a, table.condition_b, strict=True))[:3] == [
        ("zc", "z"),
        ("zc", "c"),
        ("z", "c"),
    ]
    assert set(table.subject) == {1, 2, "pooled"}
    row = table[
        (table.subject == 1) & (table.condition_a == "z") & (table.condition_b == "c")
    ].iloc[0]

    def get(condition):
        sel = scores[(scores.subject == 1) & (scores.condition == condition)]
        return sel[sel.metric == "clip"].sort_values("nsd_id")["score"].to_numpy()

    ref = wilcoxon(get("z"), get("c"), alternative="two-sided")
    assert row["statistic"] == ref.statistic and row["p_value"] == ref.pvalue
    assert row["mean_difference"] == pytest.approx((get("z") - get("c")).mean())
    assert (table["p_adjusted"] == table["p_value"]).all()


def test_compare_conditions_family_wise_correction():
    scores = _scores()
    raw = compare_conditions(scores, correction="none")
    holm = compare_conditions(scores, correction="holm")
    bonf = compare_conditions(scores, correction="bonferroni")
    m = len(raw)
    assert m == 3 * 2 * 3  # (2 subjects + pooled) × 2 metrics × 3 pairs
    np.testing.assert_allclose(bonf["p_adjusted"], np.minimum(1, raw["p_value"] * m))
    assert (holm["p_adjusted"] <= bonf["p_adjusted"] + 1e-15).all()
    assert (holm["p_adjusted"] >= raw["p_value"]).all()
    assert (holm["correction"] == "holm").all()


def test_adjust_pvalues_holm_by_hand():
    p = [0.01, 0.04, 0.03, 0.005, np.nan]
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 → running max
    np.testing.assert_allclose(adjust_pvalues(p, "holm"), [0.03, 0.06, 0.06, 0.02, np.nan])
    np.testing.assert_allclose(adjust_pvalues(p, "bonferroni"), [0.04, 0.16, 0.12, 0.02, np.nan])
    np.testing.assert_allclose(adjust_pvalues([0.5, 0.9], "holm"), [1.0, 1.0])
    with pytest.raises(ValueError, match="method='fdr' is not valid; allowed: 'holm'"):
        adjust_pvalues(p, "fdr")


def test_identical_conditions_and_errors(tmp_path):
    scores = _scores(subjects=(1,))
    same = scores[scores.condition == "zc"].assign(condition="z2")
    table = compare_conditions(pd.concat([scores, same]), conditions=["zc", "z2"])
    assert (table["p_value"] == 1.0).all() and table["statistic"].isna().all()
    with pytest.raises(ValueError, match=r"conditions \['x'\] are not in scores"):
        compare_conditions(scores, conditions=["zc", "x"])
    with pytest.raises(ValueError, match="lacks column"):
        summarize(scores.drop(columns="metric"))
    path = save_table(summarize(scores, n_bootstrap=10), tmp_path / "t" / "summary.csv")
    assert pd.read_csv(path).shape == (6, 7)
