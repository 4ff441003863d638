"""RECON HDF5 files that declare more than they hold, or point outside themselves."""

import re

import h5py
import numpy as np
import pytest
from data_builders import flat_frames, jpeg_bytes, jpeg_declaring, write_recon_h5

from egoworld.cli import main
from egoworld.data.check import check_dataset
from egoworld.data.recon_h5 import ReconH5Dataset, convert_recon_to_nwm, read_recon_poses


def declared_only(path, n: int) -> None:
    """A few-KB file declaring n frames whose chunks were never written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("images/rgb_left", (n,), dtype=h5py.vlen_dtype(np.uint8), chunks=(1000,))
        f.create_dataset("jackal/position", (n, 3), "f8", chunks=(1000, 3))
        f.create_dataset("jackal/yaw", (n,), "f8", chunks=(1000,))


def test_two_million_declared_frames_refused_before_reading(tmp_path, capsys, watchdog):
    p = tmp_path / "raw" / "a.hdf5"
    declared_only(p, 2_000_000)
    assert p.stat().st_size < 16_000
    with pytest.raises(ValueError, match=r"a.hdf5: images/rgb_left declares 2000000 frames; at most 100000"):
        ReconH5Dataset(p.parent)
    report = check_dataset(p.parent)
    assert [str(x) for x in report.problems] == [
        f"{p}: images/rgb_left declares 2000000 frames; at most 100000 per file"
    ]
    assert main(["data", "check", str(p.parent)]) == 1
    captured = capsys.readouterr()
    assert "problems: 1" in captured.out and captured.err == ""


def test_declared_but_unwritten_data_refused(tmp_path):
    declared_only(tmp_path / "a.hdf5", 50_000)
    with pytest.raises(ValueError, match=r"images/rgb_left declares shape \(50000,\) but stores no data"):
        read_recon_poses(tmp_path / "a.hdf5")
    p = tmp_path / "b.hdf5"
    write_recon_h5(p, 4)
    with h5py.File(p, "a") as f:  # one 12 KB frame written of a declared 600 MB image array
        del f["images/rgb_left"]
        ds = f.create_dataset("images/rgb_left", (4, 4096, 4096, 3), "u1", chunks=(1, 64, 64, 3))
        ds[0, :64, :64] = 7
    with pytest.raises(
        ValueError, match=r"declares shape \(4, 4096, 4096, 3\) \(201326592 bytes\) but stores"
    ):
        read_recon_poses(p)


def _replace(key, *args, **kwargs):
    def damage(f):
        del f[key]
        f.create_dataset(key, *args, **kwargs)

    return damage


@pytest.mark.parametrize(
    "damage, needle",
    [
        (
            _replace("images/rgb_left", (5, 100_000, 8, 3), "u1", chunks=(1, 8, 8, 3)),
            "images/rgb_left is uint8 (5, 100000, 8, 3); expected uint8 [T, H, W, 3] with H, W <= 8192",
        ),
        (_replace("jackal/yaw", data=np.zeros(7)), "5 positions but 7 yaw values; expected equal"),
        (
            _replace("jackal/position", data=np.array([b"x"] * 5)),
            "jackal/position is |S1 (5,); expected numbers",
        ),
        (lambda f: f.__delitem__("jackal/yaw"), "missing HDF5 datasets ['jackal/yaw']"),
    ],
    ids=["image-side", "lengths", "position-dtype", "missing"],
)
def test_declared_shapes_checked_against_limits_and_each_other(tmp_path, damage, needle):
    p = write_recon_h5(tmp_path / "raw" / "a.hdf5", 5)
    with h5py.File(p, "a") as f:
        damage(f)
    with pytest.raises(ValueError, match=re.escape(needle)):
        ReconH5Dataset(p.parent)
    (problem,) = check_dataset(p.parent).problems
    assert problem.path == p and needle in problem.reason


def test_links_and_storage_outside_the_file_refused(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.zeros(5).tobytes())
    other = tmp_path / "other.hdf5"
    with h5py.File(other, "w") as f:
        f.create_dataset("yaw", data=np.zeros(5))
    a = write_recon_h5(tmp_path / "raw" / "a.hdf5", 5)
    with h5py.File(a, "a") as f:
        del f["jackal/yaw"]
        f["jackal/yaw"] = h5py.ExternalLink(str(other), "/yaw")
    with pytest.raises(ValueError, match=r"jackal/yaw is a link to another file \(.*other.hdf5\)"):
        read_recon_poses(a)
    b = write_recon_h5(tmp_path / "raw2" / "b.hdf5", 5)
    with h5py.File(b, "a") as f:
        del f["jackal/yaw"]
        f.create_dataset("jackal/yaw", (5,), "f8", external=[(str(secret), 0, 40)])
    with pytest.raises(ValueError, match="jackal/yaw takes its data from other files"):
        read_recon_poses(b)
    c = write_recon_h5(tmp_path / "raw3" / "c.hdf5", 5)
    with h5py.File(c, "a") as f:  # a soft link inside the file is fine
        f["extra/yaw"] = f["jackal/yaw"][()]
        del f["jackal/yaw"]
        f["jackal/yaw"] = h5py.SoftLink("/extra/yaw")
    assert read_recon_poses(c)["num_images"] == 5


def test_jpeg_declaring_a_huge_image_refused_without_decoding(tmp_path, watchdog):
    p = write_recon_h5(tmp_path / "raw" / "a.hdf5", 4)
    with h5py.File(p, "a") as f:
        f["images/rgb_left"][1] = np.frombuffer(jpeg_declaring(60000), np.uint8)
        f["images/rgb_left"][2] = np.frombuffer(jpeg_declaring(9000), np.uint8)
    with pytest.raises(ValueError, match=r"a.hdf5: image 1 JPEG header declares too many pixels"):
        convert_recon_to_nwm(p.parent, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    problems = check_dataset(p.parent).problems
    assert len(problems) == 1 and "image 1 JPEG header declares too many pixels" in problems[0].reason
    with h5py.File(p, "a") as f:
        f["images/rgb_left"][1] = np.frombuffer(jpeg_bytes(flat_frames(1)[0]), np.uint8)
    with pytest.raises(
        ValueError, match=r"image 2 JPEG header declares 9000x9000 pixels; expected at most 8192"
    ):
        convert_recon_to_nwm(p.parent, tmp_path / "out")
