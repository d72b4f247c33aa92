"""Networks. Every trained network is a `PretrainedModel` (models/base.py): one folder format
(config.json + model.safetensors + tokenizer files), `save_pretrained` / `from_pretrained`, and
`load_pretrained(folder)` for whichever network a folder holds."""

from tamms.models.base import MODEL_TYPES, PretrainedModel, build_model, load_pretrained, resolve_weights

__all__ = ["MODEL_TYPES", "PretrainedModel", "build_model", "load_pretrained", "resolve_weights"]
