import json

import h5py
import numpy as np
import pytest

from brainldm.nsd import load_captions, load_stimulus_images
from brainldm.testing import VOCABULARY


def test_images_any_order_with_repeats(fake_nsd):
    a, b, c = (int(i) for i in fake_nsd.image_nsd_ids[[5, 0, 9]])
    ids = [a, b, a, c, b]
    images = load_stimulus_images(fake_nsd.layout, ids)
    with h5py.File(fake_nsd.layout.stimuli()) as f:
        brick = f["imgBrick"]
        assert brick.dtype == np.uint8 and brick.shape[-1] == 3
        expected = np.stack([brick[i] for i in ids])
    np.testing.assert_array_equal(images, expected)
    assert images.shape == (5, 64, 64, 3)
    assert images[0].std() > 10  # an actual picture, not an empty chunk


def test_image_id_out_of_range(fake_nsd):
    with pytest.raises(ValueError, match=r"nsd_ids \[4000\] are out of range.*0\.\.3999"):
        load_stimulus_images(fake_nsd.layout, [0, 4000])


def test_captions_describe_the_image(fake_nsd):
    ids = fake_nsd.image_nsd_ids[[3, 1, 3]]
    captions = load_captions(fake_nsd.layout, ids)
    assert captions[0] == captions[2] == fake_nsd.captions[int(ids[0])]
    assert captions[1] == fake_nsd.captions[int(ids[1])]
    assert all(5 <= len(c) <= 7 for c in captions)
    words = set(" ".join(captions[0]).split())
    assert len(words & set(VOCABULARY)) >= 3


def test_missing_captions(fake_nsd_copy):
    from brainldm.nsd import load_stim_info

    info = load_stim_info(fake_nsd_copy)
    path = fake_nsd_copy.captions("train2017")
    coco_id = int(json.loads(path.read_text())["annotations"][0]["image_id"])
    nsd_id = int(info.index[info["cocoId"] == coco_id][0])
    data = json.loads(path.read_text())
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != coco_id]
    path.write_text(json.dumps(data))
    with pytest.raises(KeyError, match=f"no caption for nsd_id {nsd_id} \\(cocoId {coco_id}\\)"):
        load_captions(fake_nsd_copy, [nsd_id])


def test_missing_captions_file(fake_nsd_copy):
    fake_nsd_copy.captions("val2017").unlink()
    from brainldm.nsd import load_stim_info

    info = load_stim_info(fake_nsd_copy)
    nsd_id = int(info.index[info["cocoSplit"] == "val2017"][0])
    with pytest.raises(FileNotFoundError, match="captions_val2017.json.*COCO annotations"):
        load_captions(fake_nsd_copy, [nsd_id])
