"""Benchmarks as library code: what `egoworld bench` and `benchmarks/gpu/run.sh` run.

- `latency`: rollout latency of the chunked world models against the frame-wise baseline
  (EgoWM Figure 5); `egoworld bench latency` is its command line.
- `gpu_suite`: one prepared run of the real-size measurements on a GPU (training steps with FLOPs
  and MFU, latency, frames per second, SAM 2 tracking), with a `--dry-run` on the CPU at tiny sizes.

Timings are never asserted in tests; the figures live in docs/performance.md.
"""
