"""TFX components over kt_core: `Tuner` (search) and `Trainer` (train the best, export)."""

from components.artifacts import HtmlReport
from components.trainer.component import Trainer
from components.tuner.component import Tuner

__all__ = ["Tuner", "Trainer", "HtmlReport"]
