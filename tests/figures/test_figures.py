"""The paper's figures: each writes PNG, SVG and the table of exactly what it draws."""

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib")

from brainldm.encoding import EncodingAnalyses, EncodingResult  # noqa: E402
from brainldm.figures import (  # noqa: E402
    VoxelSpace,
    figure_3,
    figure_4,
    figure_5,
    figure_6,
    figure_7,
    figure_9,
    save_figure_files,
    significance_marks,
)


def _scores(rng, subjects=(1, 2), n=12):
    rows = []
    means = {"z": 0.6, "c": 0.7, "zc": 0.85}
    for s in subjects:
        for condition, mean in means.items():
            for i in range(n):
                for metric in ("alex2", "pixcorr"):
                    rows.append({"subject": s, "condition": condition, "nsd_id": 100 + i,
                                 "metric": metric, "score": mean + 0.1 * rng.standard_normal()})  # fmt: skip
    return pd.DataFrame(rows)


def test_figure_5_pools_subjects_with_sem_and_marks_the_tests(tmp_path):
    scores = _scores(np.random.default_rng(0))
    tests = pd.DataFrame([
        {"subject": "pooled", "metric": "alex2", "condition_a": "z", "condition_b": "zc",
         "p_adjusted": 0.004},
        {"subject": "pooled", "metric": "alex2", "condition_a": "c", "condition_b": "zc",
         "p_adjusted": 0.2},
        {"subject": "1", "metric": "alex2", "condition_a": "z", "condition_b": "zc",
         "p_adjusted": 0.9},
    ])  # fmt: skip
    summary = pd.DataFrame([{"subject": "pooled", "condition": "zc", "metric": "alex2",
                             "ci_low": 0.8, "ci_high": 0.9}])  # fmt: skip
    fig, table = figure_5(scores, tests, summary)
    for _, row in table.iterrows():  # against a direct computation over the pooled images
        s = scores[(scores.metric == row.metric) & (scores.condition == row.condition)]["score"]
        assert row.n_images == 24
        assert row["mean"] == pytest.approx(s.mean())
        assert row["sem"] == pytest.approx(s.std(ddof=1) / np.sqrt(len(s)))
    zc = table[(table.metric == "alex2") & (table.condition == "zc")].iloc[0]
    assert zc.p_holm_vs_z == 0.004 and zc.p_holm_vs_c == 0.2  # the pooled rows, either order
    assert (zc.ci_low, zc.ci_high) == (0.8, 0.9)
    assert np.isnan(table[table.metric == "pixcorr"]["p_holm_vs_z"]).all()
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "**" in texts and "n.s." in texts
    paths = save_figure_files(fig, table, tmp_path, "figure5")
    assert sorted(p.name for p in paths.values()) == ["figure5.csv", "figure5.png", "figure5.svg"]
    assert paths["svg"].read_text().lstrip().startswith("<?xml")
    back = pd.read_csv(paths["csv"])
    np.testing.assert_allclose(back["mean"], table["mean"])
    assert [significance_marks(p) for p in (0.0005, 0.005, 0.03, 0.2, np.nan)] == [
        "***", "**", "*", "n.s.", ""]  # fmt: skip


def _reconstruction_folder(folder, ids, conditions=("z", "c", "zc"), n_samples=2):
    from PIL import Image

    from brainldm.reconstruction import png_path, write_originals

    rng = np.random.default_rng(1)
    write_originals(folder, ids, rng.integers(0, 255, (len(ids), 16, 16, 3), dtype=np.uint8))
    rows = []
    for nsd_id in ids:
        for condition in conditions:
            for sample in range(1 if condition == "z" else n_samples):
                path = png_path(condition, nsd_id, sample)
                (folder / path).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.full((16, 16, 3), 10 * sample, np.uint8)).save(folder / path)
                rows.append({"nsd_id": nsd_id, "condition": condition, "sample": sample,
                             "seed": 0, "path": path})  # fmt: skip
    pd.DataFrame(rows).to_csv(folder / "index.csv", index=False)
    return folder


def test_figures_3_and_4_show_the_asked_sample_of_each_condition(tmp_path):
    from brainldm.reconstruction import png_path

    a = _reconstruction_folder(tmp_path / "subj01", [5, 7, 9])
    b = _reconstruction_folder(tmp_path / "subj02", [7, 9, 11])
    fig, table = figure_3(a, n_images=2, sample=1, subject_label="subj01")
    assert list(table.nsd_id.unique()) == [5, 7]
    assert list(table.column[:4]) == ["original", "z", "c", "zc"]
    cell = table[(table.nsd_id == 7) & (table.column == "zc")].path.item()
    assert cell == png_path("zc", 7, 1)  # the asked sample
    # z only has one image per test image: its only sample stands in
    assert table[(table.nsd_id == 7) & (table.column == "z")].path.item() == png_path("z", 7, 0)
    fig4, table4 = figure_4({"subj01": a, "subj02": b})
    assert list(table4.nsd_id.unique()) == [7, 9]  # only the images every subject has
    assert list(table4.column[:3]) == ["original", "subj01", "subj02"]
    save_figure_files(fig, table, tmp_path / "out", "figure3")
    save_figure_files(fig4, table4, tmp_path / "out", "figure4")
    with pytest.raises(FileNotFoundError, match="index.csv is missing"):
        figure_3(tmp_path / "nothing")


def _result(name, spaces, r, significant, r2, r2_split=None, q=0.05):
    n = len(r)
    return EncodingResult(name=name, spaces=spaces, r=r, p=np.where(significant, 0.001, 0.5),
                          significant=significant, r2=r2, r2_split=r2_split,
                          best_alphas=np.ones(n), n_components={s: 4 for s in spaces}, q=q,
                          n_test=50)  # fmt: skip


def _analyses(n=60, seed=0):
    rng = np.random.default_rng(seed)
    sig = rng.random((5, n)) < 0.5
    r = rng.uniform(0, 0.6, (5, n))
    split = rng.uniform(0, 0.3, (2, n))
    results = {
        "z": _result("z", ("z",), r[0], sig[0], r[0] ** 2),
        "c": _result("c", ("c",), r[1], sig[1], r[1] ** 2),
        "zc": _result("zc", ("zc",), r[2], sig[2], r[2] ** 2),
        "z+zc": _result("z+zc", ("z", "zc"), r[3], sig[3], split.sum(0), split),
    }
    unique = {"z|z+zc": split[0], "zc|z+zc": split[1]}
    best = np.where(sig[4], rng.integers(0, 3, n), -1)
    return EncodingAnalyses(results=results, unique=unique, best_layers={"0.50": best},
                            layer_names={"0.50": ["unet_a_s0.50_f0.50", "unet_b_s0.50_f0.50",
                                                  "unet_c_s0.50_f0.50"]},
                            unique_reading="split")  # fmt: skip


def test_brain_figures_colour_significant_voxels_only(tmp_path):
    an = _analyses()
    n = len(an.results["z"].r)
    idx = np.stack(np.unravel_index(np.arange(n), (5, 4, 3)), axis=1)
    space = VoxelSpace(idx, (5, 4, 3))  # no transforms: slices
    fig, table = figure_6(an, ["z", "c", "zc"], space)
    for m in ("z", "c", "zc"):
        res = an.results[m]
        np.testing.assert_array_equal(np.isfinite(table[m]), res.significant)
        np.testing.assert_allclose(table[m][res.significant], res.r[res.significant])
    assert any(f"{an.results['z'].significant.sum()} voxels coloured" in t.get_text()
               for ax in fig.axes for t in [ax.yaxis.label])
    save_figure_files(fig, table, tmp_path, "figure6")
    fig7, table7 = figure_7(an, [("noise 0.50", ("z", "zc"))], space)
    joint = an.results["z+zc"]
    diff = an.results["z+zc"].r2_split[1] - an.results["z+zc"].r2_split[0]  # the split's
    np.testing.assert_array_equal(np.isfinite(table7["noise 0.50"]), joint.significant)
    np.testing.assert_allclose(table7["noise 0.50"][joint.significant], diff[joint.significant])
    fig9, table9 = figure_9(an, space)
    best = an.best_layers["0.50"]
    np.testing.assert_array_equal(np.isnan(table9["0.50"]), best < 0)
    legend = [t.get_text() for ax in fig9.axes if ax.get_legend() for t in ax.get_legend().texts]
    assert legend == ["a", "b", "c"]
    for f, t, name in ((fig7, table7, "figure7"), (fig9, table9, "figure9")):
        paths = save_figure_files(f, t, tmp_path, name)
        assert all(p.stat().st_size > 0 for p in paths.values())
    with pytest.raises(KeyError, match=r"models \['zz'\] are not in the analyses"):
        figure_6(an, ["zz"], space)


def test_brain_figure_titles_state_the_runs_fdr_level():
    an = _analyses()
    for name, res in an.results.items():
        an.results[name] = _result(name, res.spaces, res.r, res.significant, res.r2,
                                   res.r2_split, q=0.01)  # fmt: skip
    n = len(an.results["z"].r)
    space = VoxelSpace(np.stack(np.unravel_index(np.arange(n), (5, 4, 3)), axis=1), (5, 4, 3))
    for fig, _ in (figure_6(an, ["z"], space), figure_7(an, [("0.50", ("z", "zc"))], space),
                   figure_9(an, space)):  # fmt: skip
        assert "P < 0.01, FDR" in fig._suptitle.get_text()
        assert "0.05" not in fig._suptitle.get_text()


def test_brain_figures_on_fsaverage_through_the_transforms(tmp_path):
    pytest.importorskip("nilearn")
    from brainldm.testing import write_fake_nsd

    fake = write_fake_nsd(tmp_path / "nsd", subjects=(1,), n_sessions=1, n_trials_per_session=12,
                          n_shared=5, n_native_vertices=200, formats=("hdf5",),
                          n_fsaverage_vertices=None)  # fmt: skip
    streams = fake.volumes[1]["streams"]
    idx = np.argwhere(streams >= 0)[:60]
    space = VoxelSpace(idx, streams.shape, fake.layout, 1)
    fig, table = figure_6(_analyses(), ["z"], space, kinds=("flat",))
    paths = save_figure_files(fig, table, tmp_path / "out", "figure6")
    assert paths["svg"].stat().st_size < 5e6  # the mesh is embedded as pixels
    assert len([ax for ax in fig.axes if ax.name == "3d"]) == 2  # flat, both hemispheres
