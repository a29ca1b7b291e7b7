"""Turning a user's module file (or a built-in name) into a keras-tuner HyperModel.

A module may define, in order of preference:
  * the attribute the config names (`hypermodel: MyHyperModel`): a HyperModel
    subclass (instantiated with `hypermodel_args`), a HyperModel instance, or a
    function `f(hp)`;
  * `hypermodel`: a `keras_tuner.HyperModel` instance (or subclass);
  * `build_model(hp)`: returns a compiled Keras model.
`resnet` and `xception` name keras-tuner's HyperResNet / HyperXception; no module needed.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import inspect
import os
import sys
from typing import Optional, Sequence

from kt_core.config import BUILTIN_HYPERMODELS, ConfigError


class ModuleError(ValueError):
    """The module file is missing, broken or defines nothing to tune."""


def is_builtin(name: Optional[str]) -> bool:
    return name in BUILTIN_HYPERMODELS


def is_module_name(ref: str) -> bool:
    """`pkg.module` (importable, e.g. baked into the image) rather than a file path."""
    return bool(ref) and not ref.endswith(".py") and "/" not in ref and all(
        part.isidentifier() for part in ref.split("."))


def module_path(ref: str) -> str:
    """The file behind a module file path or an importable module name."""
    if is_module_name(ref) and not os.path.isfile(ref):
        try:
            spec = importlib.util.find_spec(ref)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.origin:
            raise ModuleError(f"module {ref!r} is neither a file nor an importable module")
        return spec.origin
    if not os.path.isfile(ref):
        raise ModuleError(f"module file not found: {ref}")
    return ref


def load_module(ref: str):
    """Imports a module file by path (or an importable module by name); errors name it."""
    path = module_path(ref)
    name = "kt_user_module_" + hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        sys.modules.pop(name, None)
        raise ModuleError(f"module file {path} has a syntax error at line {e.lineno}: {e.msg}") from e
    except Exception as e:
        sys.modules.pop(name, None)
        raise ModuleError(f"module file {path} failed to import: {type(e).__name__}: {e}") from e
    return module


def file_sha256(ref: str) -> str:
    with open(module_path(ref), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def resolve_hypermodel(module_file: Optional[str], hypermodel: Optional[str] = None,
                       hypermodel_args: Optional[dict] = None,
                       input_shape: Optional[Sequence[int]] = None,
                       classes: Optional[int] = None):
    """Returns a `keras_tuner.HyperModel` for the module file / names given."""
    import keras_tuner

    hypermodel_args = dict(hypermodel_args or {})
    builtin = module_file if is_builtin(module_file) else hypermodel if is_builtin(hypermodel) else None
    if builtin:
        return _builtin(builtin, hypermodel_args, input_shape, classes)
    if not module_file:
        raise ModuleError("no module file given and no built-in hypermodel named "
                          f"(built-ins: {list(BUILTIN_HYPERMODELS)})")
    module = load_module(module_file)

    if hypermodel:
        if not hasattr(module, hypermodel):
            raise ModuleError(f"module file {module_file} has no attribute {hypermodel!r} "
                              "(named by the 'hypermodel' config key)")
        return _as_hypermodel(getattr(module, hypermodel), hypermodel_args, module_file, hypermodel)
    if hasattr(module, "hypermodel"):
        return _as_hypermodel(module.hypermodel, hypermodel_args, module_file, "hypermodel")
    if hasattr(module, "build_model"):
        if not callable(module.build_model):
            raise ModuleError(f"module file {module_file}: build_model is not callable")
        return _function_hypermodel(module.build_model)
    raise ModuleError(
        f"module file {module_file} defines neither build_model(hp) nor hypermodel "
        "(a keras_tuner.HyperModel); name another attribute with the 'hypermodel' config key"
    )


def _as_hypermodel(obj, args, module_file, attr):
    import keras_tuner

    if inspect.isclass(obj) and issubclass(obj, keras_tuner.HyperModel):
        try:
            return obj(**args)
        except TypeError as e:
            raise ConfigError(f"hypermodel_args: cannot construct {obj.__name__} from "
                              f"{module_file}: {e}") from e
    if isinstance(obj, keras_tuner.HyperModel):
        return obj
    if callable(obj):
        return _function_hypermodel(obj)
    raise ModuleError(f"module file {module_file}: {attr} is not a HyperModel, "
                      f"a HyperModel subclass or a function of hp (got {type(obj).__name__})")


def _builtin(name, args, input_shape, classes):
    import keras_tuner

    if input_shape is None or classes is None:
        raise ConfigError(f"input_shape/classes: built-in hypermodel {name!r} needs both "
                          "(taken from the data when an image feature is configured)")
    cls = {"resnet": keras_tuner.applications.HyperResNet,
           "xception": keras_tuner.applications.HyperXception}[name]
    try:
        return cls(input_shape=tuple(input_shape), classes=int(classes), **args)
    except TypeError as e:
        raise ConfigError(f"hypermodel_args: {e}") from e


@functools.lru_cache(maxsize=None)
def _function_hypermodel_class():
    import keras_tuner

    class FunctionHyperModel(keras_tuner.HyperModel):
        """Wraps `build_model(hp)` the way keras-tuner's DefaultHyperModel does."""

        def __init__(self, fn):
            super().__init__(name=getattr(fn, "__name__", None))
            self.build_fn = fn

        def build(self, hp):
            return self.build_fn(hp)

    return FunctionHyperModel


def _function_hypermodel(fn):
    return _function_hypermodel_class()(fn)
