"""The lower face moved for one mouth opening: a jaw drop, a dark mouth, a hint of teeth.

Everything that does not change with the opening is worked out once per job (`MouthRig`): the
patch around the mouth and chin, a displacement field of unit strength, the lips' inner
contours. Per frame only that patch is re-rendered: the field scaled by the opening, one
`cv2.remap` of the patch, the opened mouth painted in; the rest of the frame is the portrait
as it is, so outside the patch a lip-synced draft is the breathing draft.

The field, per column of the patch: below the line where the lips meet, the jaw moves down
by the full amount (lips, chin), fading out under the chin; above it the upper lip lifts a
little, fading out towards the nose. Sideways it is a cosine bump centred on the mouth, so the
corners hardly move and the opening is a lens, as a speaking mouth's is.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Mesh indices (MediaPipe's 468-point face mesh), right to left across the image.
UPPER_INNER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
LOWER_INNER = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
RIGHT_CORNER, LEFT_CORNER, CHIN = 61, 291, 152
# The widest jaw drop, as a fraction of the mouth's width (about a relaxed "ah").
MAX_DROP = 0.32
UPPER_LIFT = 0.12  # the upper lip moves up by this fraction of the jaw's drop
# The portrait's mouth counts as closed when its lips are less than this far apart (of width).
CLOSED_GAP = 0.06
MOUTH_COLOUR = np.array([38, 16, 20], dtype=np.float32)
TEETH_COLOUR = np.array([205, 198, 188], dtype=np.float32)


@dataclass
class MouthRig:
    """The patch of the portrait around the mouth and what a frame needs to move it."""

    x0: int
    y0: int
    patch: np.ndarray  # (h, w, 3) uint8: the portrait's pixels there
    grid_x: np.ndarray  # (h, w) float32: identity sampling coordinates
    grid_y: np.ndarray
    field: np.ndarray  # (h, w) float32: displacement per pixel of jaw drop (down is +)
    upper: np.ndarray  # (11, 2) float32: inner upper lip, patch coordinates
    lower: np.ndarray  # (11, 2) float32: inner lower lip
    bump_upper: np.ndarray  # (11,) the field's sideways weight at each lip point
    bump_lower: np.ndarray
    max_drop: float  # pixels at opening 1
    closed: bool  # whether the portrait's own mouth is closed (then teeth are hinted)

    @property
    def box(self) -> tuple[int, int, int, int]:
        h, w = self.patch.shape[:2]
        return self.x0, self.y0, self.x0 + w, self.y0 + h


def build_rig(image: np.ndarray, landmarks: np.ndarray) -> MouthRig:
    """Everything about the mouth that stays the same all through the video, worked out once."""
    right, left, chin = landmarks[RIGHT_CORNER], landmarks[LEFT_CORNER], landmarks[CHIN]
    width = float(np.hypot(*(left - right)))
    centre_x = float((left[0] + right[0]) / 2)
    upper, lower = landmarks[UPPER_INNER], landmarks[LOWER_INNER]
    meet_y = float((upper[:, 1].mean() + lower[:, 1].mean()) / 2)
    max_drop = MAX_DROP * width
    h, w = image.shape[:2]
    # Even edges: the patch is pasted into 4:2:0 frames, whose chroma covers 2x2 pixels.
    x0 = max(0, int(min(right[0], left[0]) - 0.7 * width)) // 2 * 2
    x1 = min(w // 2 * 2, (int(max(right[0], left[0]) + 0.7 * width) + 2) // 2 * 2)
    y0 = max(0, int(meet_y - 0.6 * width)) // 2 * 2
    y1 = min(h // 2 * 2, (int(chin[1] + 0.5 * width + max_drop) + 2) // 2 * 2)
    grid_x, grid_y = np.meshgrid(
        np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32)
    )

    def bump(x: np.ndarray) -> np.ndarray:
        u = np.clip(np.abs(x - centre_x) / (0.62 * width), 0, 1)
        return (0.5 * (1 + np.cos(np.pi * u))).astype(np.float32)

    # Where the lips meet, column by column (the lips' midline, flat beyond the corners).
    mid = (upper + lower) / 2
    order = np.argsort(mid[:, 0])
    meet = np.interp(grid_x[0], mid[order, 0], mid[order, 1]).astype(np.float32)
    below = grid_y - meet  # > 0: jaw
    chin_y = float(chin[1])
    fade = max(1.0, y1 - (chin_y + 0.15 * width))
    jaw = np.clip(1 - (grid_y - (chin_y + 0.15 * width)) / fade, 0, 1)
    lip_fade = 0.5 * width
    lift = -UPPER_LIFT * np.clip(1 + below / lip_fade, 0, 1)
    vertical = np.where(below >= 0, jaw, lift)
    field = (vertical * bump(grid_x)).astype(np.float32)

    gap = float(np.median(lower[:, 1] - upper[:, 1]))
    offset = np.array([x0, y0], dtype=np.float32)
    return MouthRig(
        x0=x0,
        y0=y0,
        patch=np.ascontiguousarray(image[y0:y1, x0:x1]),
        grid_x=grid_x - x0,
        grid_y=grid_y - y0,
        field=field,
        upper=upper - offset,
        lower=lower - offset,
        bump_upper=bump(upper[:, 0]),
        bump_lower=bump(lower[:, 0]),
        max_drop=max_drop,
        closed=gap < CLOSED_GAP * width,
    )


def render_mouth(rig: MouthRig, opening: float) -> np.ndarray:
    """The patch with the mouth open by `opening` (0 closed, 1 wide); the portrait's own at 0."""
    if opening <= 0.01:
        return rig.patch
    drop = opening * rig.max_drop
    out = cv2.remap(
        rig.patch,
        rig.grid_x,
        rig.grid_y - drop * rig.field,
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    upper = rig.upper.copy()
    upper[:, 1] -= UPPER_LIFT * drop * rig.bump_upper
    lower = rig.lower.copy()
    lower[:, 1] += drop * rig.bump_lower
    mask = np.zeros(out.shape[:2], dtype=np.uint8)
    cv2.fillPoly(mask, [_contour(upper, lower)], 255, lineType=cv2.LINE_AA, shift=4)
    if not rig.closed:  # the portrait's own open mouth (its teeth) stays where it was
        cv2.fillPoly(mask, [_contour(rig.upper, rig.lower)], 0, lineType=cv2.LINE_AA, shift=4)
    paint: np.ndarray = np.empty(out.shape, dtype=np.float32)
    paint[:] = MOUTH_COLOUR
    if rig.closed:  # a hint of upper teeth just under the upper lip
        teeth = upper.copy()
        teeth[:, 1] += min(0.3 * drop, 0.08 * rig.max_drop / MAX_DROP) * rig.bump_upper
        teeth_mask = np.zeros(out.shape[:2], dtype=np.uint8)
        cv2.fillPoly(teeth_mask, [_contour(upper, teeth)], 255, lineType=cv2.LINE_AA, shift=4)
        shade = cv2.GaussianBlur(teeth_mask, (3, 3), 0).astype(np.float32)[..., None] / 255
        paint = paint * (1 - 0.8 * shade) + TEETH_COLOUR * (0.8 * shade)
    alpha = cv2.GaussianBlur(mask, (3, 3), 0).astype(np.float32)[..., None] / 255
    return (out * (1 - alpha) + paint * alpha).astype(np.uint8)


def _contour(upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """The closed outline between two lip lines that share their end points."""
    points = np.concatenate([upper, lower[::-1]])
    return np.round(points * 16).astype(np.int32)  # 4 fractional bits (shift=4 below)
