"""Training learned autoscalers with Stable-Baselines3 on ``rlscale/JetStream-v0``.

Reading guide (each module imports only those above it; SB3, torch and MLflow are imported where used):

* ``config`` — agent files (``agents/ppo.yaml`` …, ``kind: SB3Agent``): strict, hyperparameters checked against
  the algorithm, per-scenario overrides; ``EnvKwargs``, the environment arguments.
* ``envs`` — the vectorized training and evaluation environments (``ContinuousActions`` for SAC).
* ``callbacks`` — held-out evaluation with fleet KPIs and a baseline; training-episode KPIs.
* ``tracking`` — MLflow: the SB3 logger's writer, the pyfunc model, registration.
* ``figures`` — the learning curve and a sweep's curves; ``train`` — the manager (``train()``, ``TrainResult``);
  ``run_files`` — what a run folder holds.
* ``sweep`` — grids × seeds of training runs as keyed cells on an executor (local pool or Ray);
  ``sweep_tracking`` — their MLflow runs, logged by the driver.

Start with ``train.train``. What training produces is deployed as ``rlscale.policies.learned.LearnedPolicy``
(its files, ``policy.json``, the environment arguments that travel with it); the action → replica mapping the
environment and a deployed policy share is ``rlscale.policies.actions.ActionMap``.
"""

from rlscale.training.train import TrainResult, train

__all__ = ["TrainResult", "train"]
