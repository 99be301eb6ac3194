"""Model family, registry and host-side codec."""

from jaxlic.models.config import ModelConfig
from jaxlic.models.registry import DEFAULT_MODEL, LAMBDAS, get_config, get_model, list_models, qualities
