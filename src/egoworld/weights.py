"""Loading saved diffusers/transformers components from a local folder, the same on every machine.

`load_local(cls, folder, ...)` is `cls.from_pretrained(folder, local_files_only=True, ...)` followed by
`own_storage(model)`. Why the second step: safetensors files are memory-mapped, and a tensor starts
wherever the file's header puts it, so after `from_pretrained` most parameters sit at addresses that
are not 64-byte aligned. On the CPU, oneDNN/BLAS pick a different kernel for unaligned operands, which
rounds differently: a reloaded tiny SVD UNet differed from the model that was saved by ~1e-6 on
identical weights, and a rollout by 1/255 (the failure of issue 12 on a fresh machine with
diffusers 0.42.1 / safetensors 0.8.0). Copying each tensor into memory that torch allocates (aligned,
contiguous, owned) makes a reloaded model compute exactly what the saved one computed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)
ALIGNMENT = 64  # bytes; what torch's CPU allocator guarantees


def own_storage(module: M) -> M:
    """Give every parameter and buffer its own freshly allocated (aligned) copy; returns `module`."""
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.device.type == "cpu" and (tensor.data_ptr() % ALIGNMENT or not tensor.is_contiguous()):
                tensor.data = tensor.data.clone(memory_format=torch.contiguous_format)
    return module


def load_local(cls: type[M], folder: str | Path, **kwargs) -> M:
    """`cls.from_pretrained(folder)` with nothing fetched from a hub, then `own_storage`."""
    model = cls.from_pretrained(Path(folder), local_files_only=True, **kwargs)
    return own_storage(model)
