"""LeRobot metadata that points outside the dataset, or is malformed: one line, never a traceback."""

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from data_builders import write_lerobot

from egoworld.cli import main
from egoworld.data.check import check_dataset
from egoworld.data.lerobot import LeRobotDataset

KEY = "observation.images.front"


def edit_info(root, **changes):
    path = root / "meta" / "info.json"
    info = json.loads(path.read_text())
    info.update(changes)
    path.write_text(json.dumps(info))


@pytest.mark.parametrize("version", ["v2.1", "v3.0"])
def test_video_path_leading_outside_is_refused(tmp_path, capsys, version):
    root = write_lerobot(tmp_path / "ds", [4, 3], version=version)
    outside = tmp_path / "outside"
    shutil.copytree(root / "videos", outside)  # real, readable videos: only the location is wrong
    fields = (
        "{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}"
        if version == "v2.1"
        else ("{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}")
    )
    edit_info(root, video_path=f"../outside/{fields}.mp4")
    with pytest.raises(
        ValueError,
        match=r"video_path '\.\./outside/.*' for 'observation.images.front': .* resolves to .*outside",
    ):
        LeRobotDataset(root)
    report = check_dataset(root)
    assert not report.ok and "outside the dataset folder" in str(report.problems[0])
    assert main(["data", "check", str(root)]) == 1
    out, err = capsys.readouterr()
    assert "resolves to" in out and err == ""


def test_absolute_and_symlinked_video_paths_refused(tmp_path):
    root = write_lerobot(tmp_path / "ds", [3], version="v2.1")
    edit_info(root, video_path="/etc/hostname")
    with pytest.raises(ValueError, match=r"video_path '/etc/hostname' .*: '/etc/hostname' resolves to"):
        LeRobotDataset(root)
    edit_info(root, video_path="videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4")
    assert len(LeRobotDataset(root, context=1, horizon=1)) == 2
    moved = tmp_path / "elsewhere"
    shutil.move(root / "videos", moved)
    (root / "videos").symlink_to(moved)  # a symlink out of the dataset is refused too
    with pytest.raises(ValueError, match="outside the dataset folder"):
        LeRobotDataset(root)


@pytest.mark.parametrize(
    "template, message",
    [
        (
            "videos/{episode_idx}.mp4",
            r"uses unknown field \{episode_idx\}; known fields: episode_chunk, episode_index, video_key",
        ),
        ("videos/{video_key.__class__}.mp4", r"unknown field \{video_key.__class__\}"),
        ("videos/{episode_index:{video_key}}.mp4", "nests a field"),
        ("videos/{episode_index:zz}.mp4", "cannot be filled"),
        ("videos/{", "not a valid template"),
        (7, "'video_path' is 7; expected a path template string"),
    ],
)
def test_bad_video_path_templates_are_one_line(tmp_path, capsys, template, message):
    root = write_lerobot(tmp_path / "ds", [3], version="v2.1")
    edit_info(root, video_path=template)
    with pytest.raises(ValueError, match=message):
        LeRobotDataset(root)
    assert main(["data", "check", str(root)]) == 1
    out, err = capsys.readouterr()
    assert err == "" and len([line for line in out.splitlines() if line.startswith("  - ")]) == 1


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"fps": "fast"}, r"'fps' is 'fast'; expected a finite number > 0"),
        ({"features": ["action"]}, "'features' must map each feature name"),
        ({"chunks_size": 0}, r"'chunks_size' is 0; expected an integer >= 1"),
        ({"codebase_version": 2.1}, "codebase_version 2.1 not supported"),
    ],
)
def test_malformed_info_json(tmp_path, capsys, changes, message):
    root = write_lerobot(tmp_path / "ds", [3], version="v2.1")
    edit_info(root, **changes)
    with pytest.raises(ValueError, match=message):
        LeRobotDataset(root)
    assert main(["data", "check", str(root)]) == 1
    assert capsys.readouterr().err == ""


def test_deeply_nested_info_json(tmp_path):
    root = write_lerobot(tmp_path / "ds", [3], version="v2.1")
    (root / "meta" / "info.json").write_text("[" * 100_000 + "]" * 100_000)  # RecursionError in json
    with pytest.raises(ValueError, match="info.json: JSON nested too deeply"):
        LeRobotDataset(root)
    assert "JSON nested too deeply" in str(check_dataset(root).problems[0])


def test_bad_parquet_columns_name_the_file(tmp_path):
    root = write_lerobot(tmp_path / "ds", [3], version="v2.1")
    p = root / "data" / "chunk-000" / "episode_000000.parquet"
    table = pq.read_table(p)
    bad = table.set_column(table.column_names.index("action"), "action", pa.array(["a", "b", "c"]))
    pq.write_table(bad, p)
    with pytest.raises(
        ValueError, match=r"episode_000000.parquet: column 'action' \(string\) is not numeric"
    ):
        LeRobotDataset(root)
    bad = table.set_column(table.column_names.index("episode_index"), "episode_index", pa.array([0.5] * 3))
    pq.write_table(bad, p)
    with pytest.raises(ValueError, match=r"column 'episode_index' is double; expected integers"):
        LeRobotDataset(root)
    pq.write_table(table.slice(0, 0), p)  # no rows at all
    with pytest.raises(ValueError, match="hold no rows; expected at least one episode"):
        LeRobotDataset(root)
    p.write_bytes(b"PAR1 garbage")
    problems = check_dataset(root).problems
    assert problems[0].path == p and "not a readable parquet file" in problems[0].reason


def test_v3_start_times_checked(tmp_path):
    root = write_lerobot(tmp_path / "ds", [3, 2], version="v3.0")
    p = root / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    table = pq.read_table(p)
    col = f"videos/{KEY}/from_timestamp"
    pq.write_table(table.set_column(table.column_names.index(col), col, pa.array([0.0, np.inf])), p)
    with pytest.raises(ValueError, match=r"from_timestamp' holds values outside \[0, 1e7\] s"):
        LeRobotDataset(root)


def test_declared_rows_and_json_size_capped(tmp_path, monkeypatch):
    import egoworld.data.untrusted as untrusted

    root = write_lerobot(tmp_path / "ds", [3], version="v2.1")
    monkeypatch.setattr(untrusted, "MAX_PARQUET_ROWS", 2)
    with pytest.raises(ValueError, match=r"episode_000000.parquet: declares 3 rows; at most 2 per file"):
        LeRobotDataset(root)
    monkeypatch.setattr(untrusted, "MAX_JSON_BYTES", 100)
    with pytest.raises(
        ValueError, match=r"info.json: the JSON file is \d+ bytes; at most 100 bytes are read"
    ):
        LeRobotDataset(root)


# Image-mode datasets (frames as PNG in the parquet), written by the official lerobot 0.3.3
OFFICIAL = Path(__file__).resolve().parents[1] / "fixtures" / "lerobot"
FRONT_PARQUET = Path("data") / "chunk-000" / "episode_000000.parquet"


def official_image_dataset(tmp_path) -> Path:
    return Path(shutil.copytree(OFFICIAL / "v21_image", tmp_path / "v21_image"))


def edit_cells(path, key, edit):
    """Rewrite column `key` of a parquet file: cell i becomes edit(i, cell)."""
    table = pq.read_table(path)
    cells = [edit(i, c) for i, c in enumerate(table.column(key).to_pylist())]
    new = pa.array(cells, type=table.schema.field(key).type)
    pq.write_table(table.set_column(table.column_names.index(key), key, new), path)


def png_declaring(side: int) -> bytes:
    """A valid 1x1 PNG whose IHDR (CRC fixed) declares side x side pixels: a tiny "bomb"."""
    import io
    import struct
    import zlib

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", side, side)  # IHDR width, height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_image_path_inside_the_dataset_is_read(tmp_path):
    root = official_image_dataset(tmp_path)
    want = LeRobotDataset(root, context=1, horizon=2, resolution=None, output="clip").get_clip(0).frames
    folder = "images/observation.images.front/episode_000000"  # lerobot 0.3.3 keeps the PNGs here
    edit_cells(root / FRONT_PARQUET, KEY, lambda i, c: {"bytes": None, "path": f"{folder}/frame_{i:06d}.png"})
    got = LeRobotDataset(root, context=1, horizon=2, resolution=None, output="clip").get_clip(0).frames
    np.testing.assert_array_equal(got, want)
    assert check_dataset(root, deep=True).ok


@pytest.mark.parametrize(
    "cell, message",
    [
        (
            {"bytes": None, "path": "../outside.png"},
            r"image path '\.\./outside.png'.*outside the dataset folder",
        ),
        ({"bytes": None, "path": "/etc/hostname"}, "image path '/etc/hostname' is absolute"),
        ({"bytes": None, "path": "images/none.png"}, r"image file '.*none.png' not found"),
        ({"bytes": None, "path": None}, "holds no image"),
        (None, "holds no image"),
        ({"bytes": b"not an image", "path": None}, "corrupt or unreadable image"),
        ({"bytes": png_declaring(100_000), "path": None}, "at most 8192"),
    ],
)
def test_bad_image_cells_name_file_and_row(tmp_path, cell, message):
    root = official_image_dataset(tmp_path)
    (tmp_path / "outside.png").write_bytes(png_declaring(1))  # exists, but outside the dataset
    edit_cells(root / FRONT_PARQUET, KEY, lambda i, c: cell if i == 3 else c)
    ds = LeRobotDataset(root, context=1, horizon=1, resolution=None)  # frames are decoded when read
    ds[0]  # rows 0, 1: fine
    with pytest.raises(ValueError, match=rf"episode_000000.parquet: row 3 of '{KEY}': .*{message}"):
        ds[2]  # rows 2, 3
    report = check_dataset(root, deep=True)
    assert [p.path for p in report.problems] == [root / FRONT_PARQUET]
    assert report.problems[0].reason.startswith(f"row 3 of '{KEY}'")
    assert check_dataset(root).ok  # without --deep only the first and last frame of an episode


def test_image_column_of_wrong_type_refused(tmp_path, capsys):
    root = official_image_dataset(tmp_path)
    table = pq.read_table(root / FRONT_PARQUET)
    strings = pa.array(["frame.png"] * table.num_rows)
    pq.write_table(table.set_column(table.column_names.index(KEY), KEY, strings), root / FRONT_PARQUET)
    with pytest.raises(ValueError, match=r"column 'observation.images.front' is string; expected images"):
        LeRobotDataset(root)
    assert main(["data", "check", str(root)]) == 1
    out, err = capsys.readouterr()
    assert "is string; expected images as struct<bytes: binary, path: string>" in out and err == ""


def test_v3_episode_past_the_end_of_its_video(tmp_path):
    root = Path(shutil.copytree(OFFICIAL / "v30_video", tmp_path / "v30_video"))
    p = root / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    col = f"videos/{KEY}/from_timestamp"
    edit_cells(p, col, lambda i, t: 2.0 if i == 1 else t)  # episode 1 (10 frames) from frame 20 of 22
    problems = check_dataset(root).problems
    assert [str(p) for p in problems] == [
        f"{root}/videos/{KEY}/chunk-000/file-000.mp4: 22 video frames; its episodes need 30 (from_timestamp)"
    ]
    ds = LeRobotDataset(root, context=1, horizon=1, resolution=None)
    with pytest.raises(ValueError, match=r"file-000.mp4: frames \[22"):
        ds[len(ds) - 8]  # episode 1, raw frames 2, 3 -> video frames 22, 23
