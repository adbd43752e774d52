"""The code MLflow stores with a trained policy's model and runs to load it ("models from code": no pickled
Python object in the model; loading needs ``rlscale`` installed). See ``rlscale.training.tracking``."""

import mlflow.models

from rlscale.training.tracking import SB3PyFuncModel

mlflow.models.set_model(SB3PyFuncModel())
