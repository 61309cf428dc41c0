"""The model runtime: real LLM providers behind the hub's model seam (`hub.model.Model`).

`build_model(config)` turns a `ModelConfig` into a model; `describe_model` is the start-up
line; `build_compactor` keeps the context within the model's window; `check_model` is the
doctor's probe.
"""

from hub.providers.build import build_compactor, build_model, check_model
from hub.providers.config import ModelConfig
from hub.providers.specs import VALID_FORMS, describe_model, parse_spec

__all__ = [
    "VALID_FORMS",
    "ModelConfig",
    "build_compactor",
    "build_model",
    "check_model",
    "describe_model",
    "parse_spec",
]
