import numpy as np
import pandas as pd
import pytest
from evaluation_helpers import random_images as _rand
from evaluation_helpers import write_recon_folder
from PIL import Image

from brainldm.evaluation import CONDITIONS, INDEX_COLUMNS, load_image_folder, load_reconstructions


def test_contract_with_reconstruction_module():
    reconstruction = pytest.importorskip("brainldm.reconstruction")
    assert CONDITIONS == reconstruction.CONDITIONS
    assert INDEX_COLUMNS == reconstruction.INDEX_COLUMNS


def test_load_reconstructions(tmp_path):
    zc = {9: _rand((2, 16, 16, 3), 1), 3: _rand((2, 16, 16, 3), 2)}
    z = {9: _rand((1, 16, 16, 3), 3), 3: _rand((1, 16, 16, 3), 4)}
    write_recon_folder(tmp_path, {"zc": zc, "z": z})
    ids, images = load_reconstructions(tmp_path, "zc")
    assert ids.tolist() == [3, 9] and ids.dtype == np.int64
    assert images.shape == (2, 2, 16, 16, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[0], zc[3])
    np.testing.assert_array_equal(images[1], zc[9])
    ids, images = load_reconstructions(tmp_path, "z")
    assert images.shape == (2, 1, 16, 16, 3)


def test_load_reconstructions_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="index.csv not found; it is written by"):
        load_reconstructions(tmp_path, "zc")
    write_recon_folder(tmp_path, {"zc": {1: _rand((2, 8, 8, 3), 0), 2: _rand((3, 8, 8, 3), 1)}})
    with pytest.raises(ValueError, match="condition='c'.*it holds: \\['zc'\\]"):
        load_reconstructions(tmp_path, "c")
    with pytest.raises(ValueError, match="condition='zz' is not valid; allowed: 'zc', 'z', 'c'"):
        load_reconstructions(tmp_path, "zz")
    with pytest.raises(
        ValueError, match="same number of samples, but nsd_id 1 has 2 and nsd_id 2 has 3"
    ):
        load_reconstructions(tmp_path, "zc")


def test_load_reconstructions_bad_samples_and_sizes(tmp_path):
    a = tmp_path / "a"
    a.mkdir()
    write_recon_folder(a, {"c": {1: _rand((2, 8, 8, 3), 0), 2: _rand((2, 8, 8, 3), 1)}})
    index = pd.read_csv(a / "index.csv")
    index.loc[1, "sample"] = 5
    index.to_csv(a / "index.csv", index=False)
    with pytest.raises(ValueError, match=r"nsd_id 1 has sample indices \[0, 5\]; expected 0..1"):
        load_reconstructions(a, "c")
    b = tmp_path / "b"
    b.mkdir()
    write_recon_folder(b, {"c": {1: _rand((1, 8, 8, 3), 0), 2: _rand((1, 8, 9, 3), 1)}})
    with pytest.raises(ValueError, match="every image must have the same size"):
        load_reconstructions(b, "c")


def test_load_image_folder_natural_order(tmp_path):
    imgs = {name: _rand((6, 7, 3), i) for i, name in enumerate(["10.png", "2.png", "1.png"])}
    for name, im in imgs.items():
        Image.fromarray(im).save(tmp_path / name)
    Image.fromarray(_rand((6, 7), 9)).save(tmp_path / "0_gray.png")  # converted to RGB
    (tmp_path / "notes.txt").write_text("x")
    names, images = load_image_folder(tmp_path)
    assert names == ["0_gray.png", "1.png", "2.png", "10.png"]
    assert images.shape == (4, 6, 7, 3)
    np.testing.assert_array_equal(images[3], imgs["10.png"])
    with pytest.raises(FileNotFoundError, match=r"no file matches '\*.jpg'"):
        load_image_folder(tmp_path, "*.jpg")
