"""Model and hardware specs, and the catalog that names them."""

from rlscale.specs.catalog import SpecError, load_hardware, load_model
from rlscale.specs.hardware import HardwareSpec, StepModelParams
from rlscale.specs.model import ModelSpec

__all__ = ["HardwareSpec", "ModelSpec", "SpecError", "StepModelParams", "load_hardware", "load_model"]
