import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from rating_helpers import rate_all_correct
from scipy.stats import binomtest, wilcoxon

from brainldm.evaluation import adjust_pvalues, compare_conditions
from brainldm.rating import rating_results, summarize_ratings, write_rating_results


def _holm_reference(p):
    """Holm by its definition, with loops."""
    p = np.asarray(p, float)
    idx = [i for i in range(len(p)) if np.isfinite(p[i])]
    order = sorted(idx, key=lambda i: p[i])
    m = len(order)
    out = np.full(len(p), np.nan)
    for rank, i in enumerate(order):
        out[i] = max(min(1.0, (m - j) * p[order[j]]) for j in range(rank + 1))
    return out


def test_holm_is_evaluations():
    """Rating corrects with evaluation.adjust_pvalues; check it against the definition."""
    holm = adjust_pvalues
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, np.nan]), [0.03, 0.06, 0.06, np.nan])
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.uniform(0, 0.2, size=rng.integers(1, 8))
        np.testing.assert_allclose(holm(p), _holm_reference(p))
    assert holm([]).shape == (0,)


def simulate(n_raters=4, n_images=60, accuracy=None, seed=0):
    accuracy = accuracy or {"z": 0.55, "c": 0.75, "zc": 0.95}
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(n_raters):
        for nsd_id in range(n_images):
            for condition, a in accuracy.items():
                rows.append(dict(rater=f"r{r}", nsd_id=nsd_id, condition=condition,
                                 correct=int(rng.random() < a)))  # fmt: skip
    return pd.DataFrame(rows)


def test_rating_results_match_a_direct_computation():
    data = simulate()
    res = rating_results(data)
    assert res.pooled["condition"].tolist() == ["z", "c", "zc"]  # the paper's order
    # Per rater.
    for row in res.per_rater.itertuples():
        sub = data[(data.rater == row.rater) & (data.condition == row.condition)]
        assert row.n_judgements == len(sub) and row.n_correct == sub.correct.sum()
        assert row.accuracy == pytest.approx(sub.correct.mean())
        assert row.p_chance == pytest.approx(binomtest(int(sub.correct.sum()), len(sub)).pvalue)
    # Pooled.
    per_image = data.groupby(["condition", "nsd_id"]).correct.mean()
    for row in res.pooled.itertuples():
        images = per_image[row.condition]
        assert row.accuracy == pytest.approx(data[data.condition == row.condition].correct.mean())
        assert row.sem == pytest.approx(images.std(ddof=1) / np.sqrt(len(images)))
        assert row.n_raters == 4 and row.n_images == 60 and row.n_judgements == 240
    # Tests: signed-rank on the per-image accuracies, then Holm.
    assert [tuple(t) for t in res.tests[["condition_a", "condition_b"]].values] == [
        ("z", "c"), ("z", "zc"), ("c", "zc")]  # fmt: skip
    for row in res.tests.itertuples():
        expected = wilcoxon(per_image[row.condition_a], per_image[row.condition_b])
        assert row.p_value == pytest.approx(expected.pvalue)
        assert row.statistic == pytest.approx(expected.statistic)
    np.testing.assert_allclose(res.tests["p_holm"], _holm_reference(res.tests["p_value"]))
    assert (res.tests["p_holm"] >= res.tests["p_value"]).all()
    assert res.tests.set_index(["condition_a", "condition_b"]).loc[("z", "zc"), "significant"]
    assert "zc: accuracy" in res.summary() and "Holm p" in res.summary()


def test_no_difference_gives_p_one_and_runs_are_kept_apart():
    data = simulate(n_raters=2, n_images=5, accuracy={"z": 1.0, "c": 1.0})
    res = rating_results(data)
    assert res.tests[["p_value", "p_holm"]].values.tolist() == [[1.0, 1.0]]
    assert not res.tests["significant"].any()
    two = pd.concat([data.assign(run="subj01"), data.assign(run="subj02")])
    res2 = rating_results(two)
    assert len(res2.per_image) == 2 * len(res.per_image)
    assert list(res2.per_image.columns[:3]) == ["run", "nsd_id", "condition"]


def test_rating_results_validates():
    data = simulate(n_raters=1, n_images=3)
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['correct'\]"):
        rating_results(data.drop(columns="correct"))
    with pytest.raises(ValueError, match="unknown value"):
        rating_results(data.assign(condition="zz"))
    with pytest.raises(ValueError, match="alpha must be in"):
        rating_results(data, alpha=1.5)
    only_zc = rating_results(data, conditions=["zc"])
    assert only_zc.pooled["condition"].tolist() == ["zc"] and only_zc.tests.empty


def test_empty_judgements():
    res = rating_results(pd.DataFrame(columns=["rater", "nsd_id", "condition", "correct"]))
    assert res.per_rater.empty and res.pooled.empty and res.tests.empty
    assert res.summary() == "no judgements yet"


def test_write_rating_results(tmp_path):
    res = rating_results(simulate(n_raters=1, n_images=1))  # a single image: sem is NaN
    paths = write_rating_results(res, tmp_path / "out")
    assert sorted(p.name for p in paths.values()) == sorted(
        ["rating_per_rater.csv", "rating_pooled.csv", "rating_per_image.csv", "rating_tests.csv",
         "rating_results.json"])  # fmt: skip
    summary = json.loads(paths["json"].read_text())
    assert summary["correction"] == "holm" and summary["chance"] == 0.5
    assert summary["pooled"][0]["sem"] is None
    pd.testing.assert_frame_equal(pd.read_csv(paths["pooled"]), res.pooled, check_dtype=False)
    assert not list((tmp_path / "out").glob(".tmp-*"))


def test_summarize_ratings(run_dir):
    judgements = rate_all_correct(run_dir)
    res, paths = summarize_ratings(run_dir)
    assert res.pooled["n_judgements"].sum() == len(judgements) == 20
    assert (res.pooled["accuracy"] == 1.0).all()
    assert paths["json"].parent == run_dir / "rating"


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("runs", [False, True])
def test_p_values_are_evaluations(seed, runs):
    """The tests are evaluation.compare_conditions and adjust_pvalues on per-image accuracy."""
    data = simulate(n_raters=3, n_images=25, seed=seed,
                    accuracy={"z": 0.6, "c": 0.65, "zc": 0.8})  # fmt: skip
    data = data.sample(frac=0.8, random_state=seed)  # images rated in some conditions only
    if runs:
        data = pd.concat([data.assign(run="subj01"), data.iloc[::2].assign(run="subj02")])
    res = rating_results(data)
    key = ["run", "nsd_id"] if runs else ["nsd_id"]
    per_image = data.groupby([*key, "condition"]).correct.mean().reset_index()
    image = per_image[key].astype(str).agg("/".join, axis=1)
    scores = pd.DataFrame({"subject": "s", "condition": per_image.condition,
                           "nsd_id": pd.factorize(image)[0], "metric": "accuracy",
                           "score": per_image.correct})  # fmt: skip
    table = compare_conditions(scores, conditions=["z", "c", "zc"], correction="holm")
    np.testing.assert_array_equal(res.tests["p_value"], table["p_value"])
    np.testing.assert_array_equal(res.tests["p_holm"], table["p_adjusted"])
    np.testing.assert_array_equal(res.tests["statistic"], table["statistic"])
    np.testing.assert_array_equal(res.tests["n_images"], table["n_images"])
    np.testing.assert_allclose(res.tests["accuracy_a"], table["mean_a"], rtol=1e-15)
    # Against chance: the paired test against a constant 0.5.
    for row in res.pooled.itertuples():
        sel = scores[scores.condition == row.condition]
        chance = sel.assign(condition="chance", score=0.5)
        (p,) = compare_conditions(pd.concat([sel, chance]), correction="none")["p_value"]
        assert row.p_chance == p
        assert row.p_chance == pytest.approx(wilcoxon(sel.score - 0.5).pvalue, rel=1e-12)


def test_import_is_light():
    code = (
        "import sys, brainldm.rating; "
        "print(','.join(m for m in ('flask', 'werkzeug', 'torch', 'PIL', 'matplotlib') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
