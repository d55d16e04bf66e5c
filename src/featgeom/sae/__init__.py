"""SAEs trained on family members: the seven SAELens architectures, fast CPU training with L0
control, checkpoints/resume, SAELens-loadable artifacts, and evaluation against planted features.

SAELens is imported only inside the functions that need it.
"""

from featgeom.sae.artifact import TrainedSAE, load
from featgeom.sae.config import ARCHITECTURES, SAETrainConfig
from featgeom.sae.evaluate import evaluate, evaluate_on_member
from featgeom.sae.train import train

__all__ = ["ARCHITECTURES", "SAETrainConfig", "TrainedSAE", "evaluate", "evaluate_on_member", "load", "train"]
