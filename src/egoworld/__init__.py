"""egoworld: egocentric world models from pretrained video diffusion backbones.

The public entry point of EgoWM is :func:`condition_on_actions`; see `DESIGN.md` in the docs.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["condition_on_actions", "ActionConditionedModel", "__version__"]


def __getattr__(name: str):
    # Lazy: `import egoworld` must not import torch/diffusers (the CLI's --help stays fast).
    if name in ("condition_on_actions", "ActionConditionedModel"):
        from egoworld import conditioning

        return getattr(conditioning, name)
    raise AttributeError(f"module 'egoworld' has no attribute {name!r}")
