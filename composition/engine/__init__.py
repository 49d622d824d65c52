"""The composition engine: a pure-Python library with no Django in it.

Typed dataclasses in and out, so the same code serves a Celery worker, the
command line (``python -m composition.engine``) and a notebook.
"""

from composition.engine.base_models import (
    BaseModelSpec,
    LinearShape,
    materialize_gguf,
    read_base_model_spec,
)

__all__ = ["BaseModelSpec", "LinearShape", "materialize_gguf", "read_base_model_spec"]
