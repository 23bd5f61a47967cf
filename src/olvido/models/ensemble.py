"""Ensembles: the thesis averages the predictions of three models trained with different seeds."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def member_seed(seed: int, member: int) -> int:
    """The seed of member ``member`` of the ensemble trained (or unlearned) with ``seed``."""
    return 1000 * seed + member


class Ensemble(nn.Module):
    """Mean prediction of its members (each returning shape (batch,))."""

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x) for member in self.members]).mean(dim=0)
