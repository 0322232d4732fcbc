"""The victim: one FL client holding the private batch (:mod:`.client`) and the stored weights of a
trained global model (:mod:`.trained`).

The names of what leaves a client (:class:`~benchmark.fl.observation.Observation`, the update rules,
the task's loss) are importable from here too, as they were before they moved to :mod:`benchmark.fl`.
"""

from benchmark.fl.batchnorm import BatchStatistics, batch_statistics
from benchmark.fl.observation import Observation, model_inputs
from benchmark.fl.updates import PROTOCOLS, fedavg_update, fedsgd_update, task_loss
from benchmark.victim.client import Victim, build_model, global_model

__all__ = [
    "PROTOCOLS",
    "BatchStatistics",
    "Observation",
    "Victim",
    "batch_statistics",
    "build_model",
    "fedavg_update",
    "fedsgd_update",
    "global_model",
    "model_inputs",
    "task_loss",
]
