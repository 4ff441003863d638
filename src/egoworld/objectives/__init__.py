"""Training objectives of the base models, in their papers' notation.

- `edm.EDM`: the EDM denoising objective SVD was trained with (v-prediction, sigma_data = 1).
- `flow.RectifiedFlow`: the flow-matching objective of Cosmos Predict2 and Wan.
"""

from egoworld.objectives.edm import EDM
from egoworld.objectives.flow import RectifiedFlow

__all__ = ["EDM", "RectifiedFlow"]
