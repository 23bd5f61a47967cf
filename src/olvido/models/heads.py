"""Regression heads. Every model here returns predictions of shape (batch,), never (batch, 1)."""

from __future__ import annotations

import torch
from torch import nn

THESIS_PROJECTION_DIM = 512  # the VGGFace2 ResNet50's ``dim_proj`` feature width


class ThesisHead(nn.Module):
    """The thesis's head: [projection to 512] -> Dropout 0.5 -> 256 ReLU -> Dropout 0.2 -> 128 ReLU -> 1
    -> sigmoid, times ``age_scale`` (60) to give years.

    The thesis's backbone emitted 512-d features; for other widths a linear projection to 512 comes first.
    """

    def __init__(self, in_dim: int, age_scale: float = 60.0, projection_dim: int = THESIS_PROJECTION_DIM):
        super().__init__()
        self.age_scale = age_scale
        self.projection = nn.Identity() if in_dim == projection_dim else nn.Linear(in_dim, projection_dim)
        self.layers = nn.Sequential(
            nn.Dropout(0.5),
            nn.Linear(projection_dim, 256),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(256, 128),
            nn.ReLU(),
            nn.Linear(128, 1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.layers(self.projection(features))).squeeze(-1) * self.age_scale


class LinearHead(nn.Module):
    """A linear regressor in years, its bias started at ``initial_age`` (used for face pretraining)."""

    def __init__(self, in_dim: int, initial_age: float = 30.0):
        super().__init__()
        self.linear = nn.Linear(in_dim, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.constant_(self.linear.bias, initial_age)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features).squeeze(-1)


class AgeRegressor(nn.Module):
    """``head(body(x))``: the trainable part of a model (body = the trainable backbone part of its scope)."""

    def __init__(self, body: nn.Module, head: nn.Module):
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))
