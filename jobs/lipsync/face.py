"""Find the portrait's face once per job: MediaPipe's detector, then its 468-point face mesh.

Both models come out of the mediapipe wheel at setup (the Makefile's face-model target) and run
on ai-edge-litert's TFLite interpreter; mediapipe itself is never imported. The pre- and
post-processing below is MediaPipe's own graph (face_detection_short_range.pbtxt and
face_landmark_front_cpu.pbtxt) written out in numpy: a letterboxed 128 px input, SSD anchors,
the eyes setting the crop's rotation, a 1.5x square crop of 192 px for the mesh.

`find_face` never raises for a portrait it cannot use: it returns a `FaceResult` whose `reason`
says, in words for the job page, why this draft has no lip movement.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DETECTOR_FILE = "face_detection_short_range.tflite"
LANDMARKS_FILE = "face_landmark.tflite"
DETECTOR_SIZE = 128
MESH_SIZE = 192
MIN_SCORE = 0.5  # MediaPipe's own thresholds, for detections and the mesh's face flag
NMS_IOU = 0.3
# Below this the mouth is a few pixels wide and moving it reads as noise, not speech.
MIN_FACE_WIDTH = 64
# Turned away: the nose sits this close to one cheek (nearer side over farther side), or the
# eyes tilt further than this from level.
MIN_YAW_BALANCE = 0.35
MAX_ROLL_DEGREES = 30

NO_FACE = "No face found near the centre: this draft has no lip movement."
NO_MODELS = (
    "The face models are not installed on this server (`make setup` fetches them): this draft "
    "has no lip movement."
)
NO_ANALYSIS = (
    "The face models could not be run on this server (the operator's log says why): this "
    "draft has no lip movement."
)
TURNED = "The face is turned too far from the camera: this draft has no lip movement."


def too_small(width: float) -> str:
    return (
        f"The face is too small ({width:.0f} px wide, at least {MIN_FACE_WIDTH} px needed): "
        "this draft has no lip movement."
    )


@dataclass(frozen=True)
class Face:
    """One face in image pixels: its box (x0, y0, x1, y1) and the 468 mesh points (x, y)."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray  # (468, 2) float32
    faces_found: int  # how many faces the detector saw; the largest is this one

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]


@dataclass(frozen=True)
class FaceResult:
    face: Face | None
    reason: str = ""  # why there is no usable face, for the job page; "" when there is one


# Where `make setup` puts the models: the renderer also runs without Django settings (bench).
DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[2] / "var" / "models"


def models_dir() -> Path:
    try:
        return Path(settings.FACE_MODELS_DIR)
    except ImproperlyConfigured:
        return DEFAULT_MODELS_DIR


def models_present() -> bool:
    return all((models_dir() / name).is_file() for name in (DETECTOR_FILE, LANDMARKS_FILE))


def find_face(rgb: np.ndarray) -> FaceResult:
    """The largest usable face in an RGB image (H, W, 3, uint8), or why there is none."""
    if not models_present():
        return FaceResult(None, NO_MODELS)
    boxes = _detect(rgb)
    if not boxes:
        return FaceResult(None, NO_FACE)
    box, eyes = max(boxes, key=lambda b: (b[0][2] - b[0][0]) * (b[0][3] - b[0][1]))
    width = box[2] - box[0]
    if width < MIN_FACE_WIDTH:
        return FaceResult(None, too_small(width))
    mesh = _mesh(rgb, box, eyes)
    if mesh is None:
        return FaceResult(None, NO_FACE)
    if _turned_away(mesh):
        return FaceResult(None, TURNED)
    return FaceResult(Face(box=box, landmarks=mesh, faces_found=len(boxes)))


# --- the models ------------------------------------------------------------------------------

_lock = threading.Lock()  # one interpreter per model per process, not thread-safe


@cache
def _interpreter(path: str) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=1)
    interpreter.allocate_tensors()
    return interpreter


def _run(name: str, tensor: np.ndarray) -> list[np.ndarray]:
    with _lock:
        interpreter = _interpreter(str(models_dir() / name))
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor[None])
        interpreter.invoke()
        return [interpreter.get_tensor(o["index"]) for o in interpreter.get_output_details()]


@cache
def _anchors() -> np.ndarray:
    """SSD anchor centres of the short-range detector: strides 8, 16, 16, 16, two per cell."""
    centres: list[tuple[float, float]] = []
    for stride, per_cell in ((8, 2), (16, 6)):  # layers of one stride share their cells
        cells = DETECTOR_SIZE // stride
        for y in range(cells):
            for x in range(cells):
                centres += [((x + 0.5) / cells, (y + 0.5) / cells)] * per_cell
    return np.array(centres, dtype=np.float32)


Box = tuple[float, float, float, float]
Eyes = tuple[tuple[float, float], tuple[float, float]]


def _detect(rgb: np.ndarray) -> list[tuple[Box, Eyes]]:
    """Face boxes and eye centres in image pixels, after non-maximum suppression."""
    import cv2

    h, w = rgb.shape[:2]
    scale = DETECTOR_SIZE / max(h, w)
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    pad_x, pad_y = (DETECTOR_SIZE - sw) // 2, (DETECTOR_SIZE - sh) // 2
    square = np.zeros((DETECTOR_SIZE, DETECTOR_SIZE, 3), np.float32)
    small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA)
    square[pad_y : pad_y + sh, pad_x : pad_x + sw] = small.astype(np.float32) / 127.5 - 1
    regressors, scores = _run(DETECTOR_FILE, square)
    raw, logits = regressors[0], scores[0, :, 0]
    keep = logits >= math.log(MIN_SCORE / (1 - MIN_SCORE))  # sigmoid(logit) >= MIN_SCORE
    if not keep.any():
        return []
    anchors = _anchors()[keep]
    raw, confidence = raw[keep] / DETECTOR_SIZE, logits[keep]
    cx, cy = raw[:, 0] + anchors[:, 0], raw[:, 1] + anchors[:, 1]
    bw, bh = raw[:, 2], raw[:, 3]

    def to_image(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (x * DETECTOR_SIZE - pad_x) / scale, (y * DETECTOR_SIZE - pad_y) / scale

    x0, y0 = to_image(cx - bw / 2, cy - bh / 2)
    x1, y1 = to_image(cx + bw / 2, cy + bh / 2)
    rx, ry = to_image(raw[:, 4] + anchors[:, 0], raw[:, 5] + anchors[:, 1])
    lx, ly = to_image(raw[:, 6] + anchors[:, 0], raw[:, 7] + anchors[:, 1])
    found: list[tuple[Box, Eyes]] = []
    for i in np.argsort(-confidence):
        box = (float(x0[i]), float(y0[i]), float(x1[i]), float(y1[i]))
        if all(_iou(box, other) < NMS_IOU for other, _ in found):
            found.append((box, ((float(rx[i]), float(ry[i])), (float(lx[i]), float(ly[i])))))
    return found


def _iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _mesh(rgb: np.ndarray, box: Box, eyes: Eyes) -> np.ndarray | None:
    """The 468 mesh points in image pixels, or None when the mesh sees no face there."""
    import cv2

    (rx, ry), (lx, ly) = eyes
    angle = math.degrees(math.atan2(ly - ry, lx - rx))  # the eye line's tilt, y pointing down
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = 1.5 * max(box[2] - box[0], box[3] - box[1])
    to_crop = cv2.getRotationMatrix2D((cx, cy), angle, MESH_SIZE / side)
    to_crop[:, 2] += np.array([MESH_SIZE / 2 - cx, MESH_SIZE / 2 - cy])
    crop = cv2.warpAffine(
        rgb, to_crop, (MESH_SIZE, MESH_SIZE), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0)
    )
    points, flag = _run(LANDMARKS_FILE, crop.astype(np.float32) / 255)
    if 1 / (1 + math.exp(-float(flag.reshape(-1)[0]))) < MIN_SCORE:
        return None
    xy = points.reshape(-1, 3)[:, :2]
    back = cv2.invertAffineTransform(to_crop)
    return (xy @ back[:, :2].T + back[:, 2]).astype(np.float32)


# Mesh indices: the nose tip, the cheek edges at the ears, the outer eye corners.
NOSE_TIP, RIGHT_CHEEK, LEFT_CHEEK = 1, 234, 454
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263


def _turned_away(mesh: np.ndarray) -> bool:
    nose, right, left = mesh[NOSE_TIP], mesh[RIGHT_CHEEK], mesh[LEFT_CHEEK]
    near, far = sorted((abs(nose[0] - right[0]), abs(left[0] - nose[0])))
    if far <= 0 or near / far < MIN_YAW_BALANCE:
        return True
    dx, dy = mesh[LEFT_EYE_OUTER] - mesh[RIGHT_EYE_OUTER]
    return abs(math.degrees(math.atan2(dy, dx))) > MAX_ROLL_DEGREES
