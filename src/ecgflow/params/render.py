"""Parameters of render-images and of its paper-like distortions."""

from __future__ import annotations

from pydantic import Field

from ecgflow.errors import raises_ecgflow_error
from ecgflow.params.base import Params


class DistortionParams(Params):
    """Upper bounds and probabilities of each distortion (0 switches one off)."""

    rotation_deg: float = Field(3.0, ge=0, le=45, description="max |rotation| in degrees")
    noise_std: float = Field(8.0, ge=0, le=64, description="max Gaussian noise std (0–255 scale)")
    blur_radius: float = Field(1.0, ge=0, le=10, description="max Gaussian blur radius in px")
    crease_p: float = Field(0.5, ge=0, le=1, description="probability of a fold crease")
    shadow_p: float = Field(0.5, ge=0, le=1, description="probability of a lighting gradient")
    temperature: float = Field(
        0.15, ge=0, le=0.5, description="max colour-temperature shift (red vs blue gain)"
    )
    greyscale_p: float = Field(0.2, ge=0, le=1, description="probability of greyscale")


class RenderParams(Params):
    """Parameters of the render-images stage; invalid values raise EcgflowError."""

    dpi: float = Field(100.0, ge=25, le=600, description="paper image resolution")
    paper: bool = Field(True, description="render the 12-lead paper layout")
    distort: bool = Field(False, description="apply seeded paper-like distortions")
    distortions: DistortionParams = Field(default_factory=DistortionParams)
    seed: int = Field(0, description="seed of the distortions (with each image id)")
    signal_images: bool = Field(False, description="also write GAF/RP/MTF images")
    signal_lead: str = Field("II", description="lead transformed into signal images")
    signal_window_s: float | None = Field(
        None, gt=0, description="signal-image window in seconds (none: the whole sample)"
    )
    signal_size: int = Field(224, ge=8, le=1024, description="signal-image side in pixels")
    mtf_bins: int = Field(8, ge=2, le=64, description="quantile bins of the MTF")
    splits: list[str] | None = Field(None, description="render only these splits")
    png_compress_level: int = Field(1, ge=0, le=9, description="zlib level of the PNGs")
    workers: int = Field(0, ge=0, description="worker processes; 0 = one per CPU core")
    chunk_size: int = Field(32, ge=1, description="rows per unit of work")

    _as_ecgflow_error = raises_ecgflow_error("render", "render")
