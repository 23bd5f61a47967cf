"""Offline balance augmentation: random affine parameters and their exact application to images.

The parameters of every augmented copy are stored in the manifest, so its pixels can be rebuilt
bit-for-bit from the source image at any time instead of being stored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

PARAM_COLUMNS = ("angle", "shift_x", "shift_y", "zoom", "flip")


@dataclass(frozen=True)
class AugmentLimits:
    """The thesis's ranges: rotation <= 10 degrees, shifts <= 10% of the side, zoom within +-20%."""

    max_rotation: float = 10.0
    max_shift: float = 0.1
    max_zoom: float = 0.2


def sample_params(rng: np.random.Generator, n: int, limits: AugmentLimits) -> dict[str, np.ndarray]:
    return {
        "angle": rng.uniform(-limits.max_rotation, limits.max_rotation, n),
        "shift_x": rng.uniform(-limits.max_shift, limits.max_shift, n),
        "shift_y": rng.uniform(-limits.max_shift, limits.max_shift, n),
        "zoom": rng.uniform(1 - limits.max_zoom, 1 + limits.max_zoom, n),
        "flip": rng.integers(0, 2, n),
    }


def apply_affine(
    images: np.ndarray,
    angle: np.ndarray,
    shift_x: np.ndarray,
    shift_y: np.ndarray,
    zoom: np.ndarray,
    flip: np.ndarray,
) -> np.ndarray:
    """Rotate (degrees), shift (fractions of the side), zoom (>1 enlarges) and mirror uint8 [B,S,S,3] images.

    Pixels that come from outside the image repeat the nearest edge pixel (Keras's ``fill_mode='nearest'``,
    which the thesis's ImageDataGenerator used). Identity parameters return the input unchanged.
    """
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be [B, S, S, 3], got {images.shape}")
    batch = images.shape[0]
    if batch == 0:
        return images.copy()
    radians = torch.tensor(np.asarray(angle, dtype=np.float64) * math.pi / 180)
    scale = 1.0 / torch.tensor(np.asarray(zoom, dtype=np.float64))
    mirror = torch.where(torch.tensor(np.asarray(flip)) > 0, -1.0, 1.0).double()
    cos, sin = torch.cos(radians), torch.sin(radians)
    # theta maps output coordinates (in [-1, 1]) to input coordinates; shifts are in units of the side,
    # which spans 2 in normalised coordinates.
    theta = torch.zeros(batch, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = scale * cos * mirror
    theta[:, 0, 1] = -scale * sin
    theta[:, 1, 0] = scale * sin * mirror
    theta[:, 1, 1] = scale * cos
    theta[:, 0, 2] = -2 * torch.tensor(np.asarray(shift_x, dtype=np.float64))
    theta[:, 1, 2] = -2 * torch.tensor(np.asarray(shift_y, dtype=np.float64))
    pixels = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).double()
    grid = F.affine_grid(theta, list(pixels.shape), align_corners=False)
    out = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


@dataclass(frozen=True)
class OnlineAugment:
    """Light augmentation of float NCHW training batches, drawn anew at every visit: a coin-flip mirror,
    shifts within +-``max_shift`` of the side and zoom within +-``max_zoom`` (edge pixels repeat).

    Draws from torch's global RNG, which ``training.fit`` seeds, so runs are reproducible.
    """

    flip: bool = True
    max_shift: float = 0.0
    max_zoom: float = 0.0

    def __post_init__(self) -> None:
        if not (0 <= self.max_shift < 0.5 and 0 <= self.max_zoom < 1):
            raise ValueError(
                f"augmentation shift {self.max_shift} / zoom {self.max_zoom}: expected [0, 0.5) and [0, 1)"
            )

    @property
    def active(self) -> bool:
        return self.flip or self.max_shift > 0 or self.max_zoom > 0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4:
            raise ValueError(f"online augmentation expects NCHW image batches, got shape {tuple(images.shape)}")
        n = images.shape[0]
        if self.max_shift == 0 and self.max_zoom == 0:  # mirror only: exact, no resampling
            if not self.flip:
                return images
            mirrored = torch.rand(n, device=images.device) < 0.5
            return torch.where(mirrored.view(n, 1, 1, 1), images.flip(-1), images)
        options = {"device": images.device, "dtype": images.dtype}
        scale = 1.0 / (1.0 + (2 * torch.rand(n, **options) - 1) * self.max_zoom)
        mirror = torch.where(torch.rand(n, **options) < 0.5, -1.0, 1.0) if self.flip else torch.ones(n, **options)
        theta = torch.zeros(n, 2, 3, **options)
        theta[:, 0, 0] = scale * mirror
        theta[:, 1, 1] = scale
        theta[:, :, 2] = 2 * self.max_shift * (2 * torch.rand(n, 2, **options) - 1)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
