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
