import h5py
import numpy as np
import pytest
from data_builders import circle_poses, decode_code, write_recon_h5

from egoworld.actions.spaces import nav_deltas
from egoworld.data.nwm import NWMDataset, load_trajectory
from egoworld.data.recon_h5 import ReconH5Dataset, convert_recon_to_nwm


@pytest.mark.parametrize("jpeg", [True, False])
def test_read_directly(tmp_path, jpeg):
    write_recon_h5(tmp_path / "raw" / "jackal_2019-08-02-16-23-30_0_r00.hdf5", 10, jpeg=jpeg)
    ds = ReconH5Dataset(tmp_path / "raw", context=1, horizon=3, stride=2, resolution=None, output="clip")
    assert len(ds) == 4  # starts 0, 2, 4, 6
    clip = ds[1]
    assert decode_code(clip.frames) == [2, 3, 4, 5]
    pos, yaw = circle_poses(10)
    np.testing.assert_allclose(clip.actions[1:], nav_deltas(pos[2:6], yaw[2:6], 0.25), atol=1e-5)


def test_convert_to_nwm_matches_direct_read(tmp_path):
    write_recon_h5(tmp_path / "raw" / "a.hdf5", 8)
    write_recon_h5(tmp_path / "raw" / "b.hdf5", 6, jpeg=False)
    names = convert_recon_to_nwm(tmp_path / "raw", tmp_path / "recon")
    assert names == ["a", "b"]
    t = load_trajectory(tmp_path / "recon" / "a")
    assert len(t["image_paths"]) == 8 and t["position"].shape == (8, 2)
    direct = ReconH5Dataset(tmp_path / "raw", context=1, horizon=2, resolution=None, output="clip")
    nwm = NWMDataset(tmp_path / "recon", context=1, horizon=2, resolution=None, output="clip")
    assert len(direct) == len(nwm)
    for k in (0, len(nwm) - 1):
        np.testing.assert_allclose(direct[k].actions, nwm[k].actions, atol=1e-6)
        assert decode_code(direct[k].frames) == decode_code(nwm[k].frames)
    with pytest.raises(FileExistsError):
        convert_recon_to_nwm(tmp_path / "raw", tmp_path / "recon")


def test_bad_recon_files(tmp_path):
    write_recon_h5(tmp_path / "short" / "a.hdf5", 8, n_images=6)
    with pytest.raises(ValueError, match="6 images but 8 positions"):
        ReconH5Dataset(tmp_path / "short")
    p = write_recon_h5(tmp_path / "corrupt" / "c.hdf5", 5)
    with h5py.File(p, "a") as f:
        f["images/rgb_left"][2] = np.frombuffer(b"\xff\xd8garbage", np.uint8)
    with pytest.raises(ValueError, match="image 2 is a corrupt"):
        convert_recon_to_nwm(tmp_path / "corrupt", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-written
    (tmp_path / "notes" / "x.hdf5").parent.mkdir()
    (tmp_path / "notes" / "x.hdf5").write_text("not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5"):
        ReconH5Dataset(tmp_path / "notes")
