"""The reconstruction folder format: PNG names, originals (no torch needed)."""

import numpy as np
import pytest

from brainldm.reconstruction import (
    INDEX_FILE,
    ORIGINALS_DIR,
    check_reconstruction_inputs,
    original_path,
    png_path,
    write_originals,
)


def test_paths(tmp_path):
    assert png_path("zc", 4, 1) == "zc/000004_01.png"
    assert png_path("z", np.int64(72999), 0) == "z/072999_00.png"
    assert original_path(tmp_path, 5) == tmp_path / ORIGINALS_DIR / "000005.png"
    assert (ORIGINALS_DIR, INDEX_FILE) == ("originals", "index.csv")


def test_write_originals_round_trip(tmp_path):
    from PIL import Image

    images = np.random.default_rng(0).integers(0, 256, (3, 5, 7, 3), dtype=np.uint8)
    paths = write_originals(tmp_path, [5, 0, 72999], images)
    assert [p.name for p in paths] == ["000005.png", "000000.png", "072999.png"]
    assert paths[0] == original_path(tmp_path, 5)
    np.testing.assert_array_equal(np.asarray(Image.open(paths[2])), images[2])
    assert not list(tmp_path.rglob(".tmp-*"))


@pytest.mark.parametrize(
    "ids, images, match",
    [
        ([1], np.zeros((1, 4, 4, 3), np.float32), "dtype uint8"),
        ([1], np.zeros((1, 4, 4), np.uint8), r"shape \(n_images, height, width, 3\)"),
        ([1, 2], np.zeros((1, 4, 4, 3), np.uint8), "2 ids but images has 1"),
        ([3, 3], np.zeros((2, 4, 4, 3), np.uint8), "duplicates"),
        ([-1], np.zeros((1, 4, 4, 3), np.uint8), "0-based"),
    ],
)
def test_write_originals_rejects(tmp_path, ids, images, match):
    with pytest.raises((ValueError, TypeError), match=match):
        write_originals(tmp_path, ids, images)


def test_check_reconstruction_inputs():
    z, c = np.zeros((2, 4, 5, 5)), np.zeros((2, 77, 8))
    check_reconstruction_inputs(z, c, [1, 2], ("zc", "z", "c"))
    check_reconstruction_inputs(None, c, [1, 2], ("c",))
    with pytest.raises(ValueError, match="must be unique"):
        check_reconstruction_inputs(z, c, [1, 1], ("zc",))
    with pytest.raises(ValueError, match="image_latents must have one row per nsd_id"):
        check_reconstruction_inputs(None, c, [1, 2], ("z",))
    with pytest.raises(ValueError, match="text_embeddings must have one row per nsd_id"):
        check_reconstruction_inputs(z, c[:1], [1, 2], ("c",))
