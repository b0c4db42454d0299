"""Standard 12-lead paper ECG: 3×4 leads plus a lead II rhythm strip on a millimetre grid.

Paper speed 25 mm/s and gain 10 mm/mV, as printed by electrocardiographs. The grid, lead labels
and 1 mV calibration pulses do not depend on the signal, so each (dpi, duration) background is
drawn once per process and copied; a record then costs 13 polylines (Pillow's C line drawer).

Layout (mm)::

    ┌ header 10 ───────────────────────────────────────────────────┐
    │ pulse │ I 0–2.5 s │ aVR 2.5–5 s │ V1 5–7.5 s │ V4 7.5–10 s    │  row 0 (40 mm)
    │ pulse │ II        │ aVL         │ V2         │ V5             │  row 1
    │ pulse │ III       │ aVF         │ V3         │ V6             │  row 2
    │ pulse │ II rhythm strip, 0–10 s                              │  row 3
    └ footer 10: "25 mm/s  10 mm/mV" ──────────────────────────────┘

Each column shows its quarter of the same recording, so columns are simultaneous in time.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PAPER_SPEED_MM_S = 25.0
GAIN_MM_MV = 10.0
MM_PER_INCH = 25.4

#: Leads per row of the 3×4 block; the fourth row is the rhythm strip.
GRID_LEADS: tuple[tuple[str, str, str, str], ...] = (
    ("I", "aVR", "V1", "V4"),
    ("II", "aVL", "V2", "V5"),
    ("III", "aVF", "V3", "V6"),
)
RHYTHM_LEAD = "II"

MARGIN_MM = 5.0
PULSE_MM = 10.0  # room for the calibration pulse left of the traces
HEADER_MM = 10.0
ROW_MM = 40.0
FOOTER_MM = 10.0

PAPER_RGB = (255, 246, 244)
MINOR_RGB = (250, 200, 196)
MAJOR_RGB = (228, 122, 116)
INK_RGB = (0, 0, 0)


@dataclass(frozen=True)
class PaperGeometry:
    """Where things are on the image, in pixels; what a reader needs to digitise it back."""

    dpi: float
    duration_s: float
    width: int
    height: int
    px_per_mm: float
    x0: float  # x of time 0 for every row
    baselines: tuple[float, ...]  # y of 0 mV for rows 0–3

    @property
    def px_per_s(self) -> float:
        """Horizontal pixels per second of signal."""
        return PAPER_SPEED_MM_S * self.px_per_mm

    @property
    def px_per_mv(self) -> float:
        """Vertical pixels per millivolt (up is negative y)."""
        return GAIN_MM_MV * self.px_per_mm

    def to_dict(self) -> dict[str, float | list[float]]:
        """JSON-ready form (``render.json``)."""
        return {
            "dpi": self.dpi,
            "duration_s": self.duration_s,
            "width": self.width,
            "height": self.height,
            "px_per_mm": self.px_per_mm,
            "px_per_s": self.px_per_s,
            "px_per_mv": self.px_per_mv,
            "x0": self.x0,
            "baselines": list(self.baselines),
            "paper_speed_mm_s": PAPER_SPEED_MM_S,
            "gain_mm_mv": GAIN_MM_MV,
        }


def geometry(dpi: float, duration_s: float = 10.0) -> PaperGeometry:
    """Pixel geometry of a ``duration_s`` recording printed at ``dpi``."""
    ppm = dpi / MM_PER_INCH
    width_mm = 2 * MARGIN_MM + PULSE_MM + duration_s * PAPER_SPEED_MM_S
    height_mm = HEADER_MM + len(GRID_LEADS) * ROW_MM + ROW_MM + FOOTER_MM
    baselines = tuple((HEADER_MM + ROW_MM * (r + 0.5)) * ppm for r in range(len(GRID_LEADS) + 1))
    return PaperGeometry(
        dpi=float(dpi),
        duration_s=float(duration_s),
        width=round(width_mm * ppm),
        height=round(height_mm * ppm),
        px_per_mm=ppm,
        x0=(MARGIN_MM + PULSE_MM) * ppm,
        baselines=baselines,
    )


def render_paper(
    signal_mv: np.ndarray,
    fs: float,
    channels: list[str],
    dpi: float = 100.0,
    present: np.ndarray | None = None,
) -> Image.Image:
    """Print ``signal_mv [C, T]`` (millivolts, ``channels`` named) as a 12-lead paper ECG.

    Leads that ``channels`` lacks, or that ``present`` marks False, are left blank (their
    label stays). Amplitudes are not clipped: big complexes run into neighbouring rows, as
    on paper.
    """
    n_times = signal_mv.shape[-1]
    geo = geometry(dpi, n_times / fs)
    image = _background(geo.dpi, round(geo.duration_s, 6)).copy()
    draw = ImageDraw.Draw(image)
    width = max(1, round(0.25 * geo.px_per_mm))
    row_of = _channel_rows(channels, present)
    quarter = n_times / len(GRID_LEADS[0])
    for r, names in enumerate(GRID_LEADS):
        for c, name in enumerate(names):
            if name in row_of:
                start, stop = round(c * quarter), round((c + 1) * quarter)
                trace = signal_mv[row_of[name], start:stop]
                draw.line(_points(trace, start, fs, geo, r), fill=INK_RGB, width=width)
    if RHYTHM_LEAD in row_of:
        trace = signal_mv[row_of[RHYTHM_LEAD]]
        draw.line(_points(trace, 0, fs, geo, len(GRID_LEADS)), fill=INK_RGB, width=width)
    return image


def _channel_rows(channels: list[str], present: np.ndarray | None) -> dict[str, int]:
    """The first usable channel index of every lead name."""
    rows: dict[str, int] = {}
    for i, name in enumerate(channels):
        if name not in rows and (present is None or bool(present[i])):
            rows[name] = i
    return rows


def _points(trace: np.ndarray, start: int, fs: float, geo: PaperGeometry, row: int) -> list:
    """Flat [x0, y0, x1, y1, …] pixel coordinates of ``trace`` (samples from ``start``)."""
    t = (np.arange(trace.size) + start) / fs
    xy = np.empty((trace.size, 2))
    xy[:, 0] = geo.x0 + t * geo.px_per_s
    xy[:, 1] = geo.baselines[row] - np.nan_to_num(trace, nan=0.0) * geo.px_per_mv
    return xy.ravel().tolist()


@lru_cache(maxsize=8)
def _background(dpi: float, duration_s: float) -> Image.Image:
    """Grid, calibration pulses, lead labels and the footer, drawn once per geometry."""
    geo = geometry(dpi, duration_s)
    ppm = geo.px_per_mm
    canvas = np.empty((geo.height, geo.width, 3), dtype=np.uint8)
    canvas[:] = PAPER_RGB
    # Minor lines every mm, then bold lines every 5 mm on top; the grid is anchored at the
    # trace origin so every 0.2 s / 0.5 mV falls on a bold line.
    origin_x, origin_y = geo.x0, geo.baselines[0]
    bold = max(1, round(0.15 * ppm))
    for step, colour, thickness in ((1, MINOR_RGB, 1), (5, MAJOR_RGB, bold)):
        xs = _grid_positions(origin_x, ppm * step, geo.width)
        ys = _grid_positions(origin_y, ppm * step, geo.height)
        for offset in range(thickness):
            canvas[:, np.clip(xs + offset, 0, geo.width - 1)] = colour
            canvas[np.clip(ys + offset, 0, geo.height - 1), :] = colour
    image = Image.fromarray(canvas, "RGB")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(8, round(3.5 * ppm)))
    width = max(1, round(0.25 * ppm))
    column_px = geo.duration_s / len(GRID_LEADS[0]) * geo.px_per_s
    rows = [*GRID_LEADS, (RHYTHM_LEAD,)]
    for r, names in enumerate(rows):
        base = geo.baselines[r]
        draw.line(_pulse(geo, base), fill=INK_RGB, width=width)
        for c, name in enumerate(names):
            x = geo.x0 + c * column_px
            if c:  # a short tick separates the columns, as on a printout
                draw.line([(x, base - 3 * ppm), (x, base + 3 * ppm)], fill=INK_RGB, width=width)
            draw.text((x + 1.5 * ppm, base - 13 * ppm), name, fill=INK_RGB, font=font)
    footer_y = geo.height - (FOOTER_MM - 2) * ppm
    label = f"{PAPER_SPEED_MM_S:g} mm/s   {GAIN_MM_MV:g} mm/mV"
    draw.text((geo.x0, footer_y), label, fill=INK_RGB, font=font)
    return image


def _grid_positions(origin: float, step: float, size: int) -> np.ndarray:
    first = origin - np.floor(origin / step) * step
    return np.round(np.arange(first, size, step)).astype(np.intp)


def _pulse(geo: PaperGeometry, base: float) -> list[tuple[float, float]]:
    """A 1 mV × 0.2 s calibration pulse that ends 1 mm before the trace origin."""
    ppm = geo.px_per_mm
    top = base - GAIN_MM_MV * ppm
    right = geo.x0 - 1 * ppm
    left = right - 0.2 * geo.px_per_s
    return [
        (left - 2 * ppm, base),
        (left, base),
        (left, top),
        (right, top),
        (right, base),
        (geo.x0 - 0.5 * ppm, base),
    ]
