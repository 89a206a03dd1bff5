"""``mask_dice``: MedReasoner's segmentation reward — the predicted box and key points
go through a frozen segmenter and the mask is scored by Dice against the truth.

The segmenter is built once, when the reward is built, and its per-image state cache
means the G completions of one prompt (which share an image) cost one embedding: the
rewards for all completions on the same image run as one batched ``segment`` call.
Reference masks are read from the ``mask`` column (a path, an RLE dict or an array)
and cached too.

* a sample without a reference mask scores ``None`` (TRL leaves it out of the mean);
* a completion without a usable box or point scores 0.0;
* a reference mask whose size differs from the image's is reported once (naming the
  sample id) and scores ``None``.

Pickling: the segmenter pickles as its constructor options (a neural one reloads its
weights from its local checkpoint when unpickled); the caches pickle empty.

>>> import numpy as np
>>> from PIL import Image
>>> img = np.zeros((64, 64), np.uint8); img[16:48, 16:48] = 200
>>> f = MaskDiceReward(segmenter="watershed")
>>> r = f(completions=['{"bbox": [12, 12, 52, 52], "points_1": [20, 32], "points_2": [44, 32]}', 'no box'],
...       image=[Image.fromarray(img)] * 2, mask=[img > 0, None])
>>> [None if v is None else round(v, 2) for v in r]
[1.0, None]
"""

from __future__ import annotations

import warnings
from collections import OrderedDict

import numpy as np

from ..errors import MedgroundError
from ..metrics import mask_dice
from ..registry import Option
from .base import FRAME_OPTIONS, Batch, Reward
from .registry import register


class _MaskCache:
    """Reference masks by path (LRU, ``size`` entries); arrays given inline pass through.
    Pickles empty."""

    def __init__(self, size: int = 64):
        self.size = size
        self.items: OrderedDict = OrderedDict()

    def __reduce__(self):
        return type(self), (self.size,)

    def get(self, value) -> np.ndarray:
        from ..data.masks import load_mask

        if not isinstance(value, (str, dict)) and not hasattr(value, "__fspath__"):
            return np.asarray(value).astype(bool)  # an array (or PIL image) given inline
        key = str(value) if not isinstance(value, dict) else None
        if key is not None and key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        mask = load_mask(value)
        if key is not None:
            self.items[key] = mask
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return mask


@register(
    "mask_dice",
    description="Dice of the segmenter's mask (from the predicted box + key points) with the true mask; None without a mask",
    options={
        "segmenter": Option("segmenter name (watershed, litemedsam, sam, sam2) or a Segmenter object"),
        "checkpoint": Option("local checkpoint of the segmenter (sam / sam2 folder, litemedsam state dict)"),
        "device": Option("device of a neural segmenter (watershed runs on the CPU)", changes_result=False),
        "prompt": Option("what the segmenter gets: auto (box+points when it takes both, else box), box, points, "
                         "box+points"),
        "cache_size": Option("images whose segmenter state is kept"),
        **FRAME_OPTIONS,
    },
)
class MaskDiceReward(Reward):
    """MedReasoner's segmentation reward: the answer's box and key points (mapped from
    the policy's frame to original pixels) go through a frozen segmenter, built once,
    and the mask is scored by Dice with the ``mask`` column (see the module docstring).
    Logs ``has_prompt`` and ``mask_area_frac``.

    Returns:
        list[float | None]: Dice per completion; 0.0 without a usable box or point,
        None for a sample without a reference mask (or with one of the wrong size).

    Example:
        >>> img = np.zeros((40, 40), np.uint8); img[10:30, 10:30] = 255
        >>> reward = MaskDiceReward(prompt="box", frame="norm1000")
        >>> [round(v, 1) for v in reward(completions=["<answer>[200, 200, 800, 800]</answer>"],
        ...                              image=[img], mask=[img > 0])]
        [1.0]
    """

    __name__ = "mask_dice"

    def __init__(self, segmenter="watershed", checkpoint=None, device: str = "cpu", prompt: str = "auto",
                 cache_size: int = 16, **frame_options):
        from ..models.segmenters import PROMPT_KINDS, get_segmenter

        super().__init__(**frame_options)
        self.segmenter = get_segmenter(segmenter, checkpoint=checkpoint, device=device, cache_size=int(cache_size))
        if prompt == "auto":
            prompt = "box+points" if "box+points" in self.segmenter.prompts else "box"
        if prompt not in PROMPT_KINDS or prompt not in self.segmenter.prompts:
            raise MedgroundError(f"reward mask_dice: segmenter {self.segmenter.name!r} takes prompts "
                                 f"{self.segmenter.prompts}, not {prompt!r}")
        self.prompt = prompt
        self.masks = _MaskCache()
        self.reported: set = set()

    def score(self, batch: Batch):
        seg, prompt = self.segmenter, self.prompt
        rewards: list[float | None] = [None] * len(batch)
        comp = {"has_prompt": [], "mask_area_frac": []}
        if "mask" not in batch.columns:
            raise MedgroundError(f"reward {batch.name}: the dataset has no 'mask' column")
        groups: OrderedDict = OrderedDict()  # image content key -> (state, completions)
        states: dict = {}
        for i in range(len(batch)):
            gt_value = batch.column("mask", i)
            if gt_value is None:
                continue
            image = batch.image(i)
            if image is None:
                raise MedgroundError(f"reward {batch.name} [{batch.sample_id(i)}]: no image column to segment")
            parsed = batch.parsed[i]
            box = batch.to_original([parsed.boxes[0]], i) if parsed.boxes and prompt != "points" else None
            pts = batch.points_to_original(parsed.points[0], i) if parsed.points and prompt != "box" else None
            rewards[i] = 0.0
            comp["has_prompt"].append(float(box is not None or pts is not None))
            if box is None and pts is None:
                continue
            if id(image) not in states:
                states[id(image)] = seg.embed(image)
            state = states[id(image)]
            groups.setdefault(state.key, (state, []))[1].append((i, box, pts, gt_value))
        for state, items in groups.values():
            todo = []
            for i, box, pts, gt_value in items:
                gt = self.masks.get(gt_value)
                if gt.shape != (state.height, state.width):
                    rewards[i] = None
                    self._report_size(batch, i, gt, state)
                    continue
                todo.append((i, box, pts, gt))
            if not todo:
                continue
            if any(box is None for _, box, _, _ in todo):  # mixed prompts: one call per completion
                preds = [_one(seg, state, box, pts) for _, box, pts, _ in todo]
            else:
                boxes = np.concatenate([box for _, box, _, _ in todo])
                points = None if all(p is None for _, _, p, _ in todo) else [p for _, _, p, _ in todo]
                preds = list(seg.segment(state, boxes, points))
            for (i, _, _, gt), pred in zip(todo, preds):
                rewards[i] = float(mask_dice(pred, gt)[0])
                comp["mask_area_frac"].append(float(pred.mean()))
        return rewards, comp

    def _report_size(self, batch: Batch, i: int, gt: np.ndarray, state) -> None:
        """Warn once per sample id that its reference mask does not match its image."""
        sid = batch.sample_id(i)
        if sid not in self.reported:
            self.reported.add(sid)
            warnings.warn(f"reward {batch.name} [{sid}]: mask {gt.shape[1]}x{gt.shape[0]} does not match "
                          f"the image {state.width}x{state.height}; sample skipped", stacklevel=4)


def _one(seg, state, box, pts) -> np.ndarray:
    if box is None:
        if "points" not in seg.prompts:
            return np.zeros((state.height, state.width), dtype=bool)
        return seg.segment(state, None, [pts])[0]
    return seg.segment(state, box, None if pts is None else [pts])[0]
