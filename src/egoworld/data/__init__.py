"""Datasets: one `Clip` abstraction and readers for the formats robot-learning users hold.

- `clip`: `Clip`, `WindowSpec` (context/horizon/stride/frame-rate subsampling), resize/crop.
- `nwm`: NWM/GNM processed navigation layout (`NWMDataset`, `load_trajectory`).
- `recon_h5`: RECON raw HDF5 (`ReconH5Dataset`, `convert_recon_to_nwm`).
- `onex`: 1X world model v2.0 raw shards (`OneXDataset`, `check_onex`).
- `lerobot`: LeRobotDataset v2.x / v3.0 (`LeRobotDataset`).
- `video`: PyAV seeking reader and atomic mp4 writer.
- `check`, `stats`: `check_dataset` and normalization statistics.
- `safe_pickle`: a restricted, bounded unpickler for untrusted `traj_data.pkl` files.
- `untrusted`: size/shape limits and path checks every reader applies to dataset files.

Readers import torch; import them from their modules (`from egoworld.data.nwm import NWMDataset`).
"""

from egoworld.data.clip import Clip, WindowSpec

__all__ = ["Clip", "WindowSpec"]
