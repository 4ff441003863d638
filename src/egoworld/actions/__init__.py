"""Action spaces, normalization and the action encoders of EgoWM (§3.2).

- `encoders`: `ActionEncoder` (sincos | mlp, temporal downsampling, initial-state embedding).
- `spaces`: navigation SE(2) deltas and the 1X 25-D humanoid layout.
- `normalization`: per-dimension statistics stored with a model.
"""
