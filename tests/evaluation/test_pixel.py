import numpy as np
import pytest
from evaluation_reference import pixcorr_loop, ssim_skimage

from brainldm.evaluation import GRAY_WEIGHTS, pixcorr, rgb_to_gray, ssim

skimage = pytest.importorskip("skimage")


@pytest.fixture(scope="module")
def pair():
    """Originals and correlated reconstructions, 3 images × 2 samples, 37 × 41 px."""
    rng = np.random.default_rng(0)
    orig = rng.integers(0, 256, (3, 37, 41, 3), dtype=np.uint8)
    noise = rng.integers(-60, 60, (3, 2, 37, 41, 3))
    recon = np.clip(orig[:, None].astype(int) + noise, 0, 255).astype(np.uint8)
    return orig, recon


def test_rgb_to_gray_equals_skimage(pair):
    from skimage.color import rgb2gray

    orig, _ = pair
    # uint8 is scaled by / 255.0 as Brain-Diffuser does (scikit-image multiplies by 1 / 255).
    np.testing.assert_array_equal(rgb_to_gray(orig), rgb2gray(orig / 255.0))
    np.testing.assert_allclose(rgb_to_gray(orig), rgb2gray(orig), rtol=1e-14)  # x/255 vs x*(1/255)
    as32 = (orig / 255.0).astype(np.float32)
    np.testing.assert_array_equal(rgb_to_gray(as32), rgb2gray(as32))
    assert GRAY_WEIGHTS == (0.2125, 0.7154, 0.0721)


def test_pixcorr_equals_numpy_reference(pair):
    orig, recon = pair
    got = pixcorr(orig, recon)
    expected = np.mean([pixcorr_loop(orig / 255.0, recon[:, k] / 255.0) for k in range(2)], axis=0)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(
        pixcorr(orig, recon[:, 0]), pixcorr_loop(orig, recon[:, 0]), rtol=1e-12
    )
    assert np.all((got > 0.5) & (got < 1))


def test_pixcorr_is_scale_free_and_one_for_identical(pair):
    orig, _ = pair
    np.testing.assert_allclose(pixcorr(orig, orig), 1.0)
    np.testing.assert_allclose(pixcorr(orig / 255.0, (orig / 255.0) * 0.5 + 0.1), 1.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ssim_equals_skimage(pair, dtype):
    orig, recon = pair
    o, r = (orig / 255.0).astype(dtype), (recon / 255.0).astype(dtype)
    got = ssim(o, r, chunk_size=2)  # chunks split the samples of an image
    expected = np.mean([ssim_skimage(o, r[:, k]) for k in range(2)], axis=0)
    tol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


def test_ssim_uint8_equals_brain_diffuser_float64(pair):
    orig, recon = pair
    np.testing.assert_allclose(
        ssim(orig, recon[:, 0]), ssim_skimage(orig / 255.0, recon[:, 0] / 255.0), rtol=1e-12
    )
    np.testing.assert_allclose(ssim(orig, orig), 1.0)


def test_pixel_errors(pair):
    orig, recon = pair
    with pytest.raises(ValueError, match="reconstructions has 2 images but originals has 3"):
        pixcorr(orig, recon[:2])
    with pytest.raises(ValueError, match="reconstructions has 2 images but originals has 3"):
        ssim(orig, recon[:2])
    with pytest.raises(ValueError, match="reconstructions are 37×40 but originals are 37×41"):
        ssim(orig, recon[:, :, :, :40])
    with pytest.raises(TypeError, match="uint8 or floating point"):
        pixcorr(orig.astype(np.int32), recon)
    with pytest.raises(ValueError, match="smaller than the SSIM window"):
        ssim(orig[:, :9, :9], recon[:, :, :9, :9])
