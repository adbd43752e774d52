"""Model and hardware specs, and the catalog that names them."""

from rlscale.specs.catalog import SpecError, load_hardware, load_model
from rlscale.specs.hardware import HardwareSpec, PrefillLaunch, StepModelParams
from rlscale.specs.model import ModelSpec

__all__ = [
    "HardwareSpec",
    "ModelSpec",
    "PrefillLaunch",
    "SpecError",
    "StepModelParams",
    "load_hardware",
    "load_model",
]
