"""Unlearning methods, one file each, registered by name (see ``base``)."""

from olvido.methods import finetune, random_labels, retrain  # noqa: F401  (registers the methods)
from olvido.methods.base import METHODS, UnlearnConfig, Unlearned, config_for, get_method, register, unlearn

__all__ = ["METHODS", "UnlearnConfig", "Unlearned", "config_for", "get_method", "register", "unlearn"]
