"""Import `egoworld.worlds` first: it sets MUJOCO_GL=egl (unless set) before anything imports mujoco."""

import egoworld.worlds  # noqa: F401
