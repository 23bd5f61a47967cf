"""Test-time mirroring: a model's prediction averaged over a face and its mirror image.

Faces are (nearly) left-right symmetric, so averaging over both views is a cheap, deterministic
ensemble. With a frozen part whose output is cached, ``MirrorViews`` caches the frozen output of both
views (shape ``[n, 2, ...]``) and ``MirrorAverage(views_given=True)`` runs the trainable part on each and
averages; without a frozen part (the ``all`` scope) ``MirrorAverage`` mirrors the images itself. Training
and evaluation see the same averaged function, so an unlearning method updates exactly what is deployed.
"""

from __future__ import annotations

import torch
from torch import nn

from olvido.training import to_channels_last

VIEWS = 2  # the face and its mirror image


def mirror_images(images: torch.Tensor) -> torch.Tensor:
    """Left-right mirror of NCHW images."""
    if images.ndim != 4:
        raise ValueError(f"mirroring expects NCHW images, got shape {tuple(images.shape)}")
    return images.flip(-1)


class MirrorViews(nn.Module):
    """``frozen`` applied to images and to their mirror images, stacked: ``[n, 2, ...]``."""

    def __init__(self, frozen: nn.Module):
        super().__init__()
        self.frozen = frozen

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.frozen(images), self.frozen(mirror_images(images))], dim=1)


class MirrorAverage(nn.Module):
    """The mean of ``model`` over both views: given as ``[n, 2, ...]`` inputs, or made here from images."""

    def __init__(self, model: nn.Module, views_given: bool = True):
        super().__init__()
        self.model = model
        self.views_given = views_given

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.views_given:
            x = torch.stack([x, mirror_images(x)], dim=1)
        if x.ndim < 2 or x.shape[1] != VIEWS:
            raise ValueError(f"mirrored inputs must have shape [n, {VIEWS}, ...], got {tuple(x.shape)}")
        n = x.shape[0]
        return self.model(to_channels_last(x.flatten(0, 1))).reshape(n, VIEWS).mean(dim=1)
