"""Maps on the subject's own cortex when NSD's FreeSurfer folder is there."""

import numpy as np
import pytest

from brainldm.maps import map_panel, volume_to_fsaverage, volume_to_native
from brainldm.nsd import has_subject_surfaces, load_subject_surface, read_patch
from brainldm.testing import write_patch, write_subject_surfaces


def test_patch_file_roundtrip_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    vertices, coords = rng.permutation(50)[:20], rng.standard_normal((20, 3)).astype(np.float32)
    border = np.arange(20) % 3 == 0
    write_patch(tmp_path / "lh.full.flat.patch.3d", vertices, coords, border=border)
    back_vertices, back_coords = read_patch(tmp_path / "lh.full.flat.patch.3d")
    np.testing.assert_array_equal(back_vertices, vertices)  # border codes decode too
    np.testing.assert_array_equal(back_coords, coords)
    data = (tmp_path / "lh.full.flat.patch.3d").read_bytes()
    (tmp_path / "cut").write_bytes(data[:-10])
    with pytest.raises(ValueError, match="is truncated: 20 points announced"):
        read_patch(tmp_path / "cut")
    (tmp_path / "old").write_bytes(np.array([20], ">i4").tobytes() + data[8:])
    with pytest.raises(ValueError, match="not a FreeSurfer patch"):
        read_patch(tmp_path / "old")


def _sphere(n, rng):
    from scipy.spatial import ConvexHull

    points = rng.standard_normal((n, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points * 50, ConvexHull(points).simplices


@pytest.fixture(scope="module")
def surfaced(tmp_path_factory):
    """A fake NSD with transforms (200 native vertices per hemisphere) and own surfaces."""
    from brainldm.testing import write_fake_nsd

    fake = write_fake_nsd(tmp_path_factory.mktemp("surf_nsd"), subjects=(1,), n_sessions=1,
                          n_trials_per_session=12, n_shared=5, n_native_vertices=200,
                          formats=("hdf5",), n_fsaverage_vertices=None)  # fmt: skip
    rng = np.random.default_rng(1)
    surfaces = {}
    for hemi in ("lh", "rh"):
        coords, faces = _sphere(200, rng)
        flat = np.flatnonzero(coords[:, 2] > -20)  # a cap, flattened onto its x-y plane
        surfaces[hemi] = {"coords": coords, "faces": faces, "flat_vertices": flat,
                          "flat_coords": np.c_[coords[flat, :2], np.zeros(len(flat))],
                          "sulc": coords[:, 0] / 50}  # fmt: skip
    write_subject_surfaces(fake.layout, 1, surfaces)
    return fake, surfaces


def test_the_flat_patch_keeps_the_faces_inside_it(surfaced):
    fake, surfaces = surfaced
    assert has_subject_surfaces(fake.layout, 1)
    mesh = load_subject_surface(fake.layout, 1, "lh", "flat")
    np.testing.assert_array_equal(mesh.vertices, surfaces["lh"]["flat_vertices"])
    inside = set(surfaces["lh"]["flat_vertices"])
    expected = [f for f in surfaces["lh"]["faces"] if all(v in inside for v in f)]
    assert len(mesh.faces) == len(expected) > 0
    as_native = {tuple(sorted(f)) for f in mesh.vertices[mesh.faces].tolist()}
    assert as_native == {tuple(sorted(f)) for f in np.asarray(expected).tolist()}
    inflated = load_subject_surface(fake.layout, 1, "rh", "inflated")
    np.testing.assert_allclose(inflated.coords, surfaces["rh"]["coords"], rtol=1e-5)


def test_maps_go_on_the_subjects_own_surface_when_it_is_there(surfaced, tmp_path):
    pytest.importorskip("nilearn")
    from brainldm.maps import plot_surface_rows, save_figure

    fake, _ = surfaced
    streams = fake.volumes[1]["streams"]
    idx = np.argwhere(streams >= 0)
    values = np.where(np.arange(len(idx)) % 2 == 0, 1.0, np.nan)
    panel = map_panel(values, "planted", idx, streams.shape, fake.layout, 1)
    assert panel.meshes is not None and panel.n_significant == int(np.isfinite(values).sum())
    volume = np.full(streams.shape, np.nan)
    volume[tuple(idx.T)] = values
    lh, rh = volume_to_native(fake.layout, 1, volume, order=0)
    np.testing.assert_array_equal(panel.lh, lh)  # values on the 200 native vertices
    assert len(panel.rh) == 200
    # without the surfaces the same map goes to fsaverage
    (fake.layout.surface(1, "lh.inflated")).rename(tmp_path / "moved")
    try:
        fs = map_panel(values, "planted", idx, streams.shape, fake.layout, 1)
        assert fs.meshes is None
        np.testing.assert_array_equal(fs.lh, volume_to_fsaverage(fake.layout, 1, volume, 0)[0])
    finally:
        (tmp_path / "moved").rename(fake.layout.surface(1, "lh.inflated"))
    path = save_figure(plot_surface_rows([panel], kinds=("inflated", "flat")), tmp_path / "own.png")
    assert path.stat().st_size > 0
