"""Seeded paper-like distortions of a rendered ECG: what scanned or photographed printouts show.

Each distortion draws its strength from the image's own random generator, so one seed gives
the same image on any machine and in any worker, and :func:`distort` returns what it applied.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from ecgflow.params.render import DistortionParams


def distort(
    image: Image.Image, rng: np.random.Generator, params: DistortionParams
) -> tuple[Image.Image, dict[str, Any]]:
    """Apply rotation, blur, crease, shadow, colour temperature, noise and greyscale.

    Every draw is made whether or not its distortion applies, so switching one distortion
    off leaves the others' values for the same seed unchanged.
    """
    draws = {
        "rotation_deg": rng.uniform(-1, 1) * params.rotation_deg,
        "blur_radius": rng.uniform(0, 1) * params.blur_radius,
        "crease": rng.uniform() < params.crease_p,
        "crease_line": rng.uniform(size=3),
        "shadow": rng.uniform() < params.shadow_p,
        "shadow_dir": rng.uniform(0, 2 * math.pi),
        "shadow_depth": rng.uniform(0.15, 0.45),
        "temperature": rng.uniform(-1, 1) * params.temperature,
        "noise_std": rng.uniform(0, 1) * params.noise_std,
        "noise_seed": int(rng.integers(2**32)),
        "greyscale": rng.uniform() < params.greyscale_p,
    }
    applied: dict[str, Any] = {}
    if draws["rotation_deg"]:
        image = image.rotate(
            draws["rotation_deg"], resample=Image.Resampling.BILINEAR, fillcolor=(255, 255, 255)
        )
        applied["rotation_deg"] = round(draws["rotation_deg"], 4)
    if draws["blur_radius"] > 0.05:
        image = image.filter(ImageFilter.GaussianBlur(draws["blur_radius"]))
        applied["blur_radius"] = round(draws["blur_radius"], 4)
    height, width = image.height, image.width
    gain = np.ones((height, width), dtype=np.float32)  # crease × shadow, per pixel
    if draws["crease"]:
        gain *= _crease((height, width), draws["crease_line"])
        applied["crease"] = True
    if draws["shadow"]:
        gain *= _shadow((height, width), draws["shadow_dir"], draws["shadow_depth"])
        applied["shadow_depth"] = round(draws["shadow_depth"], 4)
    t = draws["temperature"]
    channel_gain = np.array([1 + t, 1.0, 1 - t], dtype=np.float32)  # warm: redder, less blue
    if t:
        applied["temperature"] = round(t, 4)
    pixels = np.asarray(image, dtype=np.float32) * gain[..., None] * channel_gain
    if draws["noise_std"] > 0.05:
        # luminance noise, as a camera sensor adds: one draw per pixel, all channels
        noise_rng = np.random.default_rng(draws["noise_seed"])
        noise = noise_rng.standard_normal((height, width), dtype=np.float32)
        pixels += (noise * np.float32(draws["noise_std"]))[..., None]
        applied["noise_std"] = round(draws["noise_std"], 4)
    out = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    if draws["greyscale"]:
        out = out.convert("L").convert("RGB")
        applied["greyscale"] = True
    return out, applied


def _crease(shape: tuple[int, int], line: np.ndarray) -> np.ndarray:
    """A fold: a dark valley with a light ridge beside it, along a random line."""
    h, w = shape
    cx, cy, angle = line[0] * w, line[1] * h, line[2] * math.pi
    x = (np.arange(w, dtype=np.float32) - np.float32(cx)) * np.float32(math.sin(angle))
    y = (np.arange(h, dtype=np.float32) - np.float32(cy)) * np.float32(math.cos(angle))
    width = max(2.0, 0.004 * max(h, w))
    reach = int(6 * width)
    # the profile across the fold, tabulated per pixel of signed distance from the line
    d = np.arange(-reach, reach + 1, dtype=np.float64)
    profile = (
        1.0
        - 0.25 * np.exp(-((d / width) ** 2))
        + 0.08 * np.exp(-(((d - 2.5 * width) / width) ** 2))
    )
    distance = np.rint(x[None, :] - y[:, None]).astype(np.int32)
    return profile.astype(np.float32)[np.clip(distance, -reach, reach) + reach]


def _shadow(shape: tuple[int, int], direction: float, depth: float) -> np.ndarray:
    """A linear lighting gradient: full brightness on one side, ``1 - depth`` on the other."""
    h, w = shape
    span = (abs(math.cos(direction)) + abs(math.sin(direction))) / 2
    gx = ((np.arange(w) / w - 0.5) * math.cos(direction) / span).astype(np.float32)
    gy = ((np.arange(h) / h - 0.5) * math.sin(direction) / span).astype(np.float32)
    ramp = (gy[:, None] + gx[None, :] + 1) / 2  # 0 … 1 across the image
    return 1.0 - np.float32(depth) * ramp
