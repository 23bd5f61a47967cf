"""Synthetic faces: a deterministic, dependency-free stand-in for UTKFace.

Each image is a procedurally drawn face whose look changes smoothly with age (greying and receding
hair, forehead wrinkles, smaller eyes, a longer face) and with gender (hair length, face width), with
per-image nuisance variation (pose, lighting, background, skin tone, noise). Labels and file names follow
UTKFace, so every command runs on it with zero set-up, and it is the fixture of the fast tests.
"""

from __future__ import annotations

import numpy as np

from olvido.data.faceset import FaceSet

# Ages by decade, in UTKFace's proportions (MANIFEST.txt): 0-9, 10-19, ..., 100-116.
_DECADE_COUNTS = np.array([3062, 1531, 7344, 4537, 2245, 2299, 1318, 699, 504, 137, 32], dtype=float)
_SKIN_BY_RACE = np.array(
    [[224, 182, 160], [120, 82, 60], [228, 196, 160], [176, 128, 96], [200, 160, 130]], dtype=np.float32
)


def sample_ages(rng: np.random.Generator, n: int) -> np.ndarray:
    decades = rng.choice(len(_DECADE_COUNTS), size=n, p=_DECADE_COUNTS / _DECADE_COUNTS.sum())
    ages = decades * 10 + rng.integers(0, 10, size=n)
    return np.clip(ages, 1, 116).astype(np.int16)


def make_synthetic_faces(n: int = 2000, image_size: int = 64, seed: int = 0) -> FaceSet:
    """``n`` synthetic faces of ``image_size`` pixels; the same arguments always give the same pixels."""
    if n < 1:
        raise ValueError(f"n={n}: expected at least one image")
    rng = np.random.default_rng(seed)
    ages = sample_ages(rng, n)
    genders = rng.integers(0, 2, size=n).astype(np.int8)
    races = rng.integers(0, 5, size=n).astype(np.int8)
    images = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    grid = np.linspace(-1.0, 1.0, image_size, dtype=np.float32)
    ys, xs = np.meshgrid(grid, grid, indexing="ij")
    for i in range(n):
        images[i] = _draw_face(rng, xs, ys, int(ages[i]), int(genders[i]), int(races[i]))
    files = np.array(
        [f"{a}_{g}_{r}_{20170101000000000 + i}.jpg.chip.jpg" for i, (a, g, r) in enumerate(zip(ages, genders, races))],
        dtype=str,
    )
    return FaceSet(
        images=images,
        files=files,
        ages=ages,
        genders=genders,
        races=races,
        source_id=f"synthetic:n={n},size={image_size},seed={seed}",
        source_kind="synthetic",
    )


def _draw_face(
    rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray, age: int, gender: int, race: int
) -> np.ndarray:
    old = np.clip((age - 25) / 50, 0.0, 1.0)  # 0 for the young, 1 at 75+
    child = np.clip((16 - age) / 16, 0.0, 1.0)  # 1 for newborns, 0 from 16
    image = np.empty(xs.shape + (3,), dtype=np.float32)
    image[:] = rng.uniform(40, 220, size=3)  # background

    cx, cy = rng.normal(0, 0.04, size=2)
    tilt = rng.normal(0, 0.06)
    x = (xs - cx) * np.cos(tilt) + (ys - cy) * np.sin(tilt)
    y = -(xs - cx) * np.sin(tilt) + (ys - cy) * np.cos(tilt)
    scale = rng.uniform(0.9, 1.05)
    half_h = scale * (0.58 + 0.12 * (1 - child))
    half_w = scale * (0.48 - 0.05 * gender + 0.06 * child)
    face = (x / half_w) ** 2 + (y / half_h) ** 2 <= 1.0

    skin = _SKIN_BY_RACE[race] * rng.uniform(0.9, 1.1) + 12 * old
    hair_colour = rng.choice([30.0, 60.0, 110.0, 160.0]) * np.array([1.0, 0.8, 0.6], dtype=np.float32)
    grey = np.clip((age - 35) / 35, 0.0, 1.0)
    hair_colour = (1 - grey) * hair_colour + grey * np.array([205.0, 205.0, 210.0], dtype=np.float32)

    # Hair: a cap above the hairline (higher for older men) plus long sides for women.
    hairline = -half_h * (0.45 - 0.25 * old * (1 - gender))
    head = (x / (half_w * 1.12)) ** 2 + ((y + 0.04) / (half_h * 1.1)) ** 2 <= 1.0
    hair = head & (y < hairline)
    if gender == 1:
        hair |= (np.abs(x) > half_w * 0.8) & (np.abs(x) < half_w * 1.25) & (y < half_h * 0.9) & (y > hairline)
    image[face] = skin
    image[hair & ~(face & (y >= hairline))] = hair_colour

    # Forehead wrinkles: more, darker lines with age.
    n_lines = int(np.clip((age - 28) / 8, 0, 5))
    for k in range(n_lines):
        line_y = hairline + (k + 1) * 0.06
        on_line = face & (np.abs(y - line_y - 0.02 * np.sin(6 * x)) < 0.012) & (np.abs(x) < half_w * 0.6)
        image[on_line] *= 0.78 - 0.12 * old
    if age > 40:  # nasolabial folds
        for side in (-1, 1):
            fold = face & (np.abs(x - side * (0.16 + 0.1 * (y - 0.1))) < 0.012) & (y > 0.05) & (y < 0.32)
            image[fold] *= 0.8

    eye_radius = 0.075 + 0.05 * child - 0.02 * old
    for side in (-1, 1):
        ex, ey = side * half_w * 0.42, -0.05 * half_h
        white = (x - ex) ** 2 + ((y - ey) / 0.7) ** 2 <= eye_radius**2
        image[white] = 235.0
        image[(x - ex) ** 2 + (y - ey) ** 2 <= (eye_radius * 0.5) ** 2] = 40.0
    mouth = (np.abs(y - half_h * 0.55) < 0.02 + 0.01 * child) & (np.abs(x) < half_w * (0.35 - 0.08 * child))
    image[mouth & face] = np.array([150.0, 60.0, 60.0]) * (1 - 0.2 * old)

    image *= rng.uniform(0.8, 1.15)  # lighting
    image += rng.normal(0, 6, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)
