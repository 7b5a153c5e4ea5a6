import nibabel as nib
import numpy as np
import pytest

from brainldm.maps import mask_volume, unmask, volume_to_fsaverage
from brainldm.nsd import load_roi_mask


@pytest.fixture(scope="module")
def fake_with_transforms(tmp_path_factory):
    from brainldm.testing import write_fake_nsd

    return write_fake_nsd(tmp_path_factory.mktemp("maps_nsd"), n_native_vertices=300,
                          formats=("hdf5",), n_fsaverage_vertices=None)  # fmt: skip


def test_unmask_roundtrip_exact(fake_nsd):
    mask = load_roi_mask(fake_nsd.layout, 1, ["early", "ventral"])
    values = np.random.default_rng(0).standard_normal(mask.n_voxels)
    img = unmask(values, mask.voxel_indices, mask.mask.shape, mask.affine)
    assert isinstance(img, nib.Nifti1Image) and img.shape == mask.mask.shape
    np.testing.assert_array_equal(mask_volume(img, mask.voxel_indices), values)
    vol = np.asarray(img.dataobj)
    assert np.isnan(vol[~mask.mask]).all()
    np.testing.assert_array_equal(vol[mask.mask], values)  # columns follow np.nonzero order
    two = unmask(np.stack([values, -values], 1), mask.voxel_indices, mask.mask.shape)
    assert two.shape == (*mask.mask.shape, 2)
    with pytest.raises(ValueError, match=r"voxel_indices must have shape \(n_voxels, 3\)"):
        unmask(values[:-1], mask.voxel_indices, mask.mask.shape)


def test_volume_to_fsaverage_follows_transforms(fake_with_transforms):
    fake = fake_with_transforms
    layout = fake.layout
    shape = fake.volumes[1]["streams"].shape
    volume = np.arange(np.prod(shape), dtype=float).reshape(shape)
    lh, rh = volume_to_fsaverage(layout, 1, volume, order=0)
    assert lh.shape == rh.shape == (10242,)
    # reference, by hand, for a few fsaverage vertices: nearest voxel at each depth, mean
    index = np.asarray(nib.load(layout.transform(1, "rh.white-to-fsaverage")).dataobj).ravel()
    depths = [np.asarray(nib.load(layout.transform(1, f"rh.func1pt8-to-layerB{k}")).dataobj)
              .reshape(-1, 3) for k in (1, 2, 3)]  # fmt: skip
    for v in (0, 17, 5000):
        native = int(index[v]) - 1
        vals = [volume[tuple(np.rint(d[native] - 1).astype(int))] for d in depths]
        assert rh[v] == pytest.approx(np.mean(vals))


def test_surface_renders_offline(fake_with_transforms, tmp_path):
    pytest.importorskip("nilearn")
    from PIL import Image

    from brainldm.maps import plot_surface, plot_volume_mosaic, save_figure

    shape = fake_with_transforms.volumes[1]["streams"].shape
    volume = np.where(fake_with_transforms.volumes[1]["streams"] > 0, 1.0, np.nan)
    lh, rh = volume_to_fsaverage(fake_with_transforms.layout, 1, volume, order=0)
    path = save_figure(plot_surface(lh, rh, kind="flat", title="early"), tmp_path / "flat.png")
    image = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert image.shape[0] > 100 and image.std() > 10
    # some vertices coloured (hot colormap: red channel > green), not only grey mesh
    assert ((image[..., 0] - image[..., 1]) > 60).sum() > 20
    cat = plot_surface(np.where(np.isfinite(lh), 1, np.nan), rh, kind="inflated",
                       labels=["down_blocks.1", "mid_block", "up_blocks.1"])  # fmt: skip
    assert save_figure(cat, tmp_path / "cat.png").stat().st_size > 1000
    mosaic = plot_volume_mosaic(np.where(np.isfinite(volume), 0.5, np.nan))
    assert save_figure(mosaic, tmp_path / "mosaic.png").stat().st_size > 1000
    assert shape[2] > 0
