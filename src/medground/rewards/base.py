"""Shared plumbing of the reward functions.

TRL's ``GRPOTrainer`` calls a reward as
``f(prompts=..., completions=..., completion_ids=..., **columns)`` where every dataset
column arrives as a list (one entry per completion; the original PIL ``image`` among
them) together with ``trainer_state``, ``log_metric(name, value)`` and
``log_extra(column, values)``.  It expects one float per completion; ``None`` means
"not applicable" (TRL turns it into NaN and leaves it out of the means).

:class:`Reward` is the base class of that callable.  A reward class implements
``score(batch) -> (rewards, components)`` over a :class:`Batch`, and the base class

* never raises on completion text: a ``score`` that fails on the whole batch is re-run
  sample by sample and a sample that still fails scores 0.0;
* raises :class:`~medground.errors.MedgroundError` (naming the sample id) only for a
  dataset problem the user must fix — a missing ground-truth column, say;
* logs each sub-component's batch mean through ``log_metric`` as
  ``"<reward name>/<component>"`` when TRL passes it.

Coordinates: a policy answers in its *frame* (``Frame.parse`` spec, e.g.
``"qwen2.5-vl"``), or names its model *family* (``family="gemma3"``: the family's frame).
:meth:`Batch.to_original` maps its boxes to the canonical original-pixel frame of the ground truth through :mod:`medground.geometry`, using the
size of the forwarded ``image`` (what the policy saw) and the ``width`` / ``height``
columns (the original size, when the stored image was resized).

The options every frame-aware reward takes (:data:`FRAME_OPTIONS`) and the
reward-hack guards (:data:`GUARD_OPTIONS`) are documented here, once.

>>> class Length(Reward):
...     __name__ = "length"
...     def score(self, batch):
...         return [float(len(t)) for t in batch.texts], {}
>>> Length()(completions=["ab", [{"role": "assistant", "content": "abc"}]])
[2.0, 3.0]
"""

from __future__ import annotations

import math
import re
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from ..errors import MedgroundError
from ..geometry import PIXELS, Frame, as_boxes, box_area, map_boxes
from ..parsing import Parsed, completion_text, parse_completion
from ..registry import Option

RESERVED = ("trainer_state", "log_metric", "log_extra", "environments")

#: Options of every reward that reads the policy's answer in its coordinate frame.
FRAME_OPTIONS = {
    "frame": Option("coordinate frame the policy answers in: pixels, qwen2.5-vl, norm1000, norm1, fixed:WxH",
                    changes_result=False),
    "min_pixels": Option("Qwen2.5-VL min_pixels for frame=qwen2.5-vl; None means 3136", changes_result=False),
    "max_pixels": Option("Qwen2.5-VL max_pixels for frame=qwen2.5-vl; None means 12845056", changes_result=False),
    "family": Option("model family the policy belongs to (medground model families): its frame, in place of "
                     "frame=; None: use frame", changes_result=False),
}
#: The reward-hack guards of :class:`Guards` (options of :class:`GuardedReward`).
GUARD_OPTIONS = {
    "max_area_frac": Option("guard: a predicted box covering more than this fraction of the image scores 0 "
                            "(unless the truth does); None turns it off"),
    "single_answer": Option("guard: empty answer, several <answer> blocks or a repeated box score 0"),
    "max_boxes": Option("guard: more answer boxes than this (an int, or 'gt' = number of true boxes) score 0; "
                        "None turns it off"),
}


def make_frame(frame="pixels", min_pixels: int | None = None, max_pixels: int | None = None,
               family: str | None = None) -> Frame:
    """A :class:`~medground.geometry.Frame` from a spec and Qwen2.5-VL's pixel limits, or
    from a model ``family`` (its frame; a ``frame`` other than the default as well is an
    error: the two would disagree)."""
    if family is not None:
        from ..models.families import get_family

        if not (frame is None or (isinstance(frame, str) and frame.strip().lower() == "pixels")):
            raise MedgroundError(f"reward options family={family!r} and frame={frame!r}: give one of them")
        try:
            return get_family(family).frame(min_pixels=min_pixels, max_pixels=max_pixels)
        except MedgroundError as exc:
            raise MedgroundError(f"reward option family={family!r}: {exc}") from None
    if isinstance(frame, Frame):
        return frame
    options = {}
    if min_pixels is not None:
        options["min_pixels"] = int(min_pixels)
    if max_pixels is not None:
        options["max_pixels"] = int(max_pixels)
    spec = str(frame or "pixels")
    if spec.strip().lower().startswith("fixed:"):
        options = {}
    try:
        return Frame.parse(spec, **options)
    except (ValueError, TypeError) as exc:
        raise MedgroundError(f"reward option frame={frame!r}: {exc}") from None


def _size_of(image) -> tuple[int, int] | None:
    """``(W, H)`` of a PIL image, an (H, W[, C]) array, a list holding one of those (TRL's
    ``images`` column) or a ``{"width", "height"}`` dict; None when unknown."""
    if image is None:
        return None
    if isinstance(image, (list, tuple)):
        return _size_of(image[0]) if len(image) >= 1 else None
    size = getattr(image, "size", None)
    if isinstance(size, tuple) and len(size) == 2:
        return int(size[0]), int(size[1])
    shape = getattr(image, "shape", None)
    if shape is not None and len(shape) >= 2:
        if len(shape) == 3 and shape[0] in (1, 3) and shape[2] not in (1, 3, 4):  # CHW tensor
            return int(shape[2]), int(shape[1])
        return int(shape[1]), int(shape[0])
    if isinstance(image, dict) and "width" in image and "height" in image:
        return int(image["width"]), int(image["height"])
    return None


def _first_image(value):
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value


@dataclass
class Batch:
    """One reward call: completion texts, parsed completions and the forwarded columns."""

    name: str
    texts: list[str]
    columns: dict[str, list]
    frame: Frame = PIXELS
    _parsed: list[Parsed] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def parsed(self) -> list[Parsed]:
        if self._parsed is None:
            self._parsed = [parse_completion(t) for t in self.texts]
        return self._parsed

    def column(self, name: str, i: int, default=None):
        values = self.columns.get(name)
        if values is None or i >= len(values):
            return default
        return values[i]

    def sample_id(self, i: int) -> str:
        sid = self.column("id", i)
        return f"id={sid}" if sid is not None else f"completion {i}"

    def image(self, i: int):
        """The image the policy saw (PIL), or None."""
        return _first_image(self.column("image", i, self.column("images", i)))

    def image_size(self, i: int) -> tuple[int, int] | None:
        """``(W, H)`` of the image the policy saw; falls back to :meth:`size`."""
        return _size_of(self.image(i)) or self.size(i)

    def size(self, i: int) -> tuple[int, int] | None:
        """Original ``(W, H)`` of the ground truth: ``width`` / ``height`` columns, else the image's."""
        w, h = self.column("width", i), self.column("height", i)
        try:
            if w is not None and h is not None and float(w) > 0 and float(h) > 0:
                return int(w), int(h)
        except (TypeError, ValueError):
            pass
        return _size_of(self.image(i))

    def gt_boxes(self, i: int, column: str = "boxes") -> np.ndarray:
        """Ground-truth ``xyxy`` boxes (original pixels) of sample ``i``, shape (K, 4).

        Raises :class:`MedgroundError` naming the sample when the column is missing or
        malformed (a dataset problem, not a completion problem)."""
        if column not in self.columns:
            if column == "boxes" and "box" in self.columns:
                column = "box"
            else:
                raise MedgroundError(
                    f"reward {self.name}: the dataset has no {column!r} column "
                    f"(columns forwarded: {sorted(k for k in self.columns)})"
                )
        value = self.column(column, i)
        if value is None:
            return np.zeros((0, 4))
        try:
            boxes = as_boxes(value)
        except (TypeError, ValueError) as exc:
            raise MedgroundError(f"reward {self.name} [{self.sample_id(i)}]: malformed {column!r}: {exc}") from None
        return boxes

    def is_negative(self, i: int, column: str = "boxes") -> bool:
        """Whether sample ``i`` is a negative: the dataset forwards ``column`` and its boxes
        are an explicit empty list (the query names something absent from the image)."""
        if column not in self.columns or self.column(column, i) is None:
            return False
        try:
            return len(as_boxes(self.column(column, i))) == 0
        except (TypeError, ValueError):
            return False

    def to_image_pixels(self, boxes, i: int) -> np.ndarray:
        """Predicted boxes (policy frame) in pixels of the image the policy saw.

        Raises :class:`MedgroundError` naming the sample when the frame needs an image
        size and neither an ``image`` nor ``width`` / ``height`` column gives one."""
        boxes = as_boxes(boxes)
        if self.frame.kind == "pixels":
            return boxes
        size = self.image_size(i)
        if size is None:
            raise MedgroundError(
                f"reward {self.name} [{self.sample_id(i)}]: frame {self.frame.name!r} needs the image size "
                "(forward the image column or width/height columns)"
            )
        return map_boxes(boxes, size, src=self.frame, dst=PIXELS)

    def to_original(self, boxes, i: int) -> np.ndarray:
        """Predicted boxes (policy frame) in canonical original pixels (see
        :meth:`to_image_pixels` for the error when a size is needed and unknown)."""
        px = self.to_image_pixels(boxes, i)
        seen, original = self.image_size(i), self.size(i)
        if seen is None or original is None or tuple(seen) == tuple(original):
            return px
        resized = Frame("fixed", width=int(original[0]), height=int(original[1]))
        return map_boxes(px, seen, src=PIXELS, dst=resized)

    def points_to_original(self, points, i: int) -> np.ndarray:
        """Predicted ``(x, y)`` points (policy frame) in original pixels, shape (N, 2):
        the mapping of :meth:`to_original` (each point taken as a zero-size box)."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return self.to_original(np.concatenate([pts, pts], axis=1), i)[:, :2]

    def frame_extent(self, i: int) -> tuple[float, float] | None:
        """``(w, h)`` of the image in the policy's frame (for in-frame checks)."""
        if self.frame.kind in ("norm1", "norm1000", "fixed"):
            return self.frame.size(1, 1)
        size = self.image_size(i)
        return None if size is None else self.frame.size(*size)


class Reward(ABC):
    """Base class of medground's rewards: a picklable callable with TRL's reward signature.

    A subclass sets ``__name__`` (the name TRL logs it under; :func:`medground.rewards.get`
    appends the options that change the value) and implements :meth:`score`.  The
    constructor takes the coordinate frame the policy answers in (``frame``, with
    ``min_pixels`` / ``max_pixels`` for ``qwen2.5-vl``, or the policy's ``family``; see
    :data:`FRAME_OPTIONS`).
    Rewards are classes rather than closures so that they pickle, as multiprocess data
    loading and ``accelerate`` need (TRL's ``trl/rewards`` do the same).
    """

    __name__ = "reward"

    def __init__(self, frame: Frame | str = "pixels", min_pixels: int | None = None, max_pixels: int | None = None,
                 family: str | None = None):
        self.frame = make_frame(frame, min_pixels, max_pixels, family)
        self._warned = False

    @abstractmethod
    def score(self, batch: Batch) -> tuple[list[float | None], dict[str, list[float]]]:
        """One reward per completion of ``batch`` (None = not applicable) and the
        sub-components to log (name -> values)."""

    def __repr__(self) -> str:
        return f"<reward {self.__name__}>"

    def __call__(self, prompts=None, completions=None, completion_ids=None, **kwargs) -> list[float | None]:
        completions = list(completions or [])
        log_metric = kwargs.get("log_metric")
        columns = {k: v for k, v in kwargs.items() if k not in RESERVED and isinstance(v, (list, tuple))}
        batch = Batch(self.__name__, [_text(c) for c in completions], columns, self.frame)
        try:
            rewards, components = self.score(batch)
        except MedgroundError:
            raise
        except Exception as exc:  # noqa: BLE001 - never raise on completion text
            self._warn(exc)
            rewards, components = self._one_by_one(batch)
        rewards = [_finite(r) for r in rewards]
        if len(rewards) != len(batch):
            raise RuntimeError(f"reward {self.__name__} scored {len(rewards)} of {len(batch)} completions")
        if callable(log_metric):
            _log(log_metric, self.__name__, components)
        return rewards

    def _one_by_one(self, batch: Batch):
        rewards: list[float | None] = []
        components: dict[str, list[float]] = {}
        for i in range(len(batch)):
            one = Batch(
                batch.name,
                [batch.texts[i]],
                {k: [v[i]] if i < len(v) else [] for k, v in batch.columns.items()},
                batch.frame,
            )
            try:
                r, comp = self.score(one)
                rewards.append(r[0])
                for k, v in comp.items():
                    components.setdefault(k, []).extend(v)
            except MedgroundError:
                raise
            except Exception as exc:  # noqa: BLE001
                self._warn(exc)
                rewards.append(0.0)
        return rewards, components

    def _warn(self, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(f"reward {self.__name__}: {type(exc).__name__}: {exc}; affected completions score 0.0", stacklevel=3)


class GuardedReward(Reward):
    """A reward on the answer's boxes with the reward-hack guards of :class:`Guards`
    (options :data:`GUARD_OPTIONS`, all off by default) besides the frame options."""

    def __init__(self, max_area_frac: float | None = None, single_answer: bool = False,
                 max_boxes: int | str | None = None, **frame_options):
        super().__init__(**frame_options)
        self.guards = Guards.from_options(max_area_frac, single_answer, max_boxes)

    def blocked(self, batch: Batch, i: int, parsed: Parsed, gt: np.ndarray | None = None,
                pred: np.ndarray | None = None) -> str | None:
        """The guard rejecting completion ``i`` (None when the guards are off or pass).
        ``gt`` defaults to the ``boxes`` column when the dataset forwards it, ``pred`` to
        the answer's boxes in original pixels."""
        if not self.guards.active:
            return None
        if gt is None:
            gt = batch.gt_boxes(i) if "boxes" in batch.columns else np.zeros((0, 4))
        if pred is None:
            pred = batch.to_original(parsed.boxes, i)
        return self.guards.check(batch, i, parsed, pred, gt)


def _text(completion) -> str:
    try:
        return completion_text(completion)
    except Exception:  # noqa: BLE001
        return ""


def _finite(r):
    if r is None:
        return None
    try:
        r = float(r)
    except (TypeError, ValueError):
        return 0.0
    return r if math.isfinite(r) else 0.0


def _log(log_metric, name: str, components: dict[str, list[float]]) -> None:
    for key, values in components.items():
        vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
        if vals:
            try:
                log_metric(f"{name}/{key}", float(np.mean(vals)))
            except Exception:  # noqa: BLE001 - logging must not break training
                pass


# --------------------------------------------------------------------------- guards

ANSWER_OPEN_RE = re.compile(r"<answer>", re.IGNORECASE)


@dataclass(frozen=True)
class Guards:
    """Reward-hack guards shared by the grounding rewards (all off by default).

    ``max_area_frac``  a predicted box covering more than this fraction of the image
                       scores 0 — unless a ground-truth box is that large too.
    ``single_answer``  an empty answer, more than one ``<answer>`` block, or the same
                       box repeated in the answer scores 0.
    ``max_boxes``      more answer boxes than this scores 0; ``"gt"`` allows as many as
                       there are ground-truth boxes.
    """

    max_area_frac: float | None = None
    single_answer: bool = False
    max_boxes: int | str | None = None

    @classmethod
    def from_options(cls, max_area_frac=None, single_answer=False, max_boxes=None) -> Guards:
        if max_area_frac is not None:
            max_area_frac = float(max_area_frac)
            if not 0 < max_area_frac <= 1:
                raise MedgroundError(f"max_area_frac must be in (0, 1], got {max_area_frac}")
        if max_boxes is not None and max_boxes != "gt":
            try:
                max_boxes = int(max_boxes)
            except (TypeError, ValueError):
                raise MedgroundError(f"max_boxes must be an integer or 'gt', got {max_boxes!r}") from None
        return cls(max_area_frac, as_bool(single_answer), max_boxes)

    def check(self, batch: Batch, i: int, parsed: Parsed, pred_original: np.ndarray | None, gt: np.ndarray) -> str | None:
        """The name of the guard that rejects completion ``i``, or None."""
        if self.single_answer:
            if len(ANSWER_OPEN_RE.findall(batch.texts[i])) > 1 or not (parsed.answer or "").strip():
                return "single_answer"
            rounded = [tuple(np.round(b, 3)) for b in as_boxes(parsed.boxes)]
            if len(rounded) != len(set(rounded)):
                return "single_answer"
        if self.max_boxes is not None:
            limit = max(1, len(gt)) if self.max_boxes == "gt" else int(self.max_boxes)
            if len(parsed.boxes) > limit:
                return "max_boxes"
        if self.max_area_frac is not None and pred_original is not None and len(pred_original):
            size = batch.size(i)
            if size is not None:
                image_area = float(size[0]) * float(size[1])
                frac = float(box_area(pred_original).max()) / image_area
                gt_frac = float(box_area(gt).max()) / image_area if len(gt) else 0.0
                if frac > self.max_area_frac and gt_frac <= self.max_area_frac:
                    return "max_area_frac"
        return None

    @property
    def active(self) -> bool:
        return self.max_area_frac is not None or self.single_answer or self.max_boxes is not None


def as_bool(v) -> bool:
    """Option value as a bool (``"true"``/``"1"``/``"yes"`` from the command line)."""
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes", "on")
    return bool(v)
