import numpy as np

from brainldm.cli import main
from brainldm.nsd import SubjectSplit


def test_run_dry_run_and_config_errors(tmp_path, capsys):
    assert main(["run", "--preset", "recommended", "--set", "data.subjects=[1, 5]",
                 "--dry-run"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert 'preset = "recommended"' in out and "subjects = [1, 5]" in out
    assert "grouped_folds = true" in out
    config = tmp_path / "c.toml"
    config.write_text('preset = "takagi2023"\n[decoding]\nalpha = 3\n')
    assert main(["run", str(config), "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert "unknown key(s) ['alpha'] in [decoding]; valid keys: ['alphas'" in err


def test_simulate_then_prepare(tmp_path, capsys):
    root = tmp_path / "nsd"
    assert main(["simulate", str(root), "--subjects", "1,5", "--sessions", "2"]) == 0
    assert (
        main(
            [
                "prepare",
                "--nsd-root",
                str(root),
                "--subjects",
                "5",
                "--out",
                str(tmp_path / "out"),
                "--rois",
                "early,midventral",
                "--split",
                "modern",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "subj05: 2 sessions (modern)" in out
    (path,) = (tmp_path / "out").glob("subj05_*.h5")
    split = SubjectSplit.load(path)
    assert split.rois == ("early", "midventral")
    assert np.isfinite(split.train_betas["early"]).all()


def test_errors_are_one_line(tmp_path, capsys):
    code = main(
        ["prepare", "--nsd-root", str(tmp_path / "none"), "--subjects", "1", "--out", str(tmp_path)]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("brainldm prepare: error: NSD root") and err.count("\n") == 1


def test_extract_features_and_reconstruct(tmp_path, capsys, tiny_ldm, fake_nsd):
    import pandas as pd

    from brainldm.features import FeatureStore
    from brainldm.ldm import save_ldm

    model = save_ldm(tiny_ldm, tmp_path / "model")
    assert main(["extract-features", "--nsd-root", str(fake_nsd.root), "--subjects", "2",
                 "--model", str(model), "--out", str(tmp_path / "feat")]) == 0  # fmt: skip
    z, c = FeatureStore(tmp_path / "feat", "z"), FeatureStore(tmp_path / "feat", "c")
    ids = np.unique(fake_nsd.trials[2].nsd_ids)
    np.testing.assert_array_equal(z.ids(), ids)
    np.testing.assert_array_equal(c.ids(), ids)
    assert z.get(ids[:2]).shape == (2, 4, 40, 40) and c.get(ids[:1]).shape == (1, 77, 32)
    decoded = tmp_path / "decoded.npz"
    test_ids = np.intersect1d(fake_nsd.shared_nsd_ids, ids)[:3]
    np.savez(
        decoded, nsd_ids=test_ids, image_latents=z.get(test_ids), text_embeddings=c.get(test_ids)
    )
    assert main(["reconstruct", "--model", str(model), "--decoded", str(decoded), "--out",
                 str(tmp_path / "rec"), "--steps", "4", "--n-samples", "1", "--start", "1",
                 "--conditions", "zc,z"]) == 0  # fmt: skip
    index = pd.read_csv(tmp_path / "rec" / "index.csv")
    assert sorted(index.nsd_id.unique()) == sorted(test_ids[1:])
    assert set(index.condition) == {"zc", "z"}
    assert "4 images of 2 test images" in capsys.readouterr().out


def test_prepare_extract_decode_reconstruct_from_the_shell(tmp_path, capsys, tiny_ldm, fake_nsd):
    """The paper's steps one command each; `decode` writes what `reconstruct --decoded` reads."""
    import pandas as pd

    from brainldm.decoding import DecodedLatents
    from brainldm.ldm import save_ldm

    model = save_ldm(tiny_ldm, tmp_path / "model")
    nsd = ["--nsd-root", str(fake_nsd.root), "--subjects", "1"]
    assert main(["prepare", *nsd, "--out", str(tmp_path / "prep"), "--split", "modern"]) == 0
    assert main(["extract-features", *nsd, "--model", str(model), "--out",
                 str(tmp_path / "feat")]) == 0  # fmt: skip
    (prepared,) = (tmp_path / "prep").glob("subj01_*.h5")
    capsys.readouterr()
    assert main(["decode", "--prepared", str(prepared), "--features", str(tmp_path / "feat"),
                 "--out", str(tmp_path / "dec.npz"), "--preset", "recommended",
                 "--set", "decoding.alphas=[1.0, 100.0]"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    decoded = DecodedLatents.load(tmp_path / "dec.npz")
    split = SubjectSplit.load(prepared)
    np.testing.assert_array_equal(decoded.nsd_ids, split.test_nsd_ids)
    assert decoded.image_latents.shape == (len(split.test_nsd_ids), 4, 40, 40)
    assert decoded.settings["decoding"]["alphas"] == [1.0, 100.0]
    assert decoded.settings["rois"] == {"image_latents": "early", "text_embeddings": "ventral"}
    assert f"{decoded.mean_scores()['image_latents']:.3f}" in out and "dec.npz" in out
    assert main(["reconstruct", "--model", str(model), "--decoded", str(tmp_path / "dec.npz"),
                 "--out", str(tmp_path / "rec"), "--steps", "4", "--n-samples", "1",
                 "--stop", "2", "--conditions", "z"]) == 0  # fmt: skip
    index = pd.read_csv(tmp_path / "rec" / "index.csv")
    assert sorted(index.nsd_id) == sorted(split.test_nsd_ids[:2])


def test_decode_help_and_bad_files(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["decode", "--help"])
    assert "--prepared" in capsys.readouterr().out
    (tmp_path / "bad.npz").write_text("not an archive")
    code = main(["reconstruct", "--model", str(tmp_path), "--decoded", str(tmp_path / "bad.npz"),
                 "--out", str(tmp_path / "rec")])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "bad.npz" in err and "cannot be read as decoded latents" in err
