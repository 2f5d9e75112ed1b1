"""Complete architectures in plain PyTorch, and the registry recipes build them from.

>>> from bigmodel.models import create_model, list_models
>>> model = create_model("seed-cnn", dropout_rate=0.25)
"""

from bigmodel.models.cnn import SeedCNN, seed_cnn  # importing registers "seed-cnn"
from bigmodel.models.registry import (
    check_overrides,
    create_model,
    example_input,
    is_model,
    list_models,
    load_model,
    model_defaults,
    model_name_and_config,
    read_model_spec,
    register_model,
    save_model,
)

__all__ = [
    "SeedCNN",
    "check_overrides",
    "create_model",
    "example_input",
    "is_model",
    "list_models",
    "load_model",
    "model_defaults",
    "model_name_and_config",
    "read_model_spec",
    "register_model",
    "save_model",
    "seed_cnn",
]
