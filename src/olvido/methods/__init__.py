"""Unlearning methods, one file each, registered by name (see ``base``); ``list_methods()`` lists them."""

from olvido.methods import (  # noqa: F401  (each import registers its method)
    activation_reset,
    base,
    blindspot,
    ct,
    finetune,
    fisher,
    gaussian_amnesiac,
    gradmask,
    l1_sparse,
    msg,
    neggrad_plus,
    random_labels,
    reset_distill,
    retrain,
    salun,
    scrub,
    ssd,
)
from olvido.methods.base import *  # noqa: F403  (the public API is base's)

THESIS_METHODS = ("finetune", "random_labels")  # the two methods the thesis implemented (FT, RND)

__all__ = [*base.__all__, "THESIS_METHODS"]
