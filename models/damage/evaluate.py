"""Scoring damage detectors against rendered truth: precision, recall, IoU and F1 of the mask.

Counts are pooled over every pixel of every image of a set (micro averages), so a large photo weighs
more than a small one and an image without damage still counts its false alarms. `Tally` keeps a
histogram of a detector's scores on damaged and on intact pixels, which gives the counts at every
threshold at once: the fixed threshold a user would leave the node at, and the best one for the set
("oracle": the threshold picked after seeing the truth, which flatters the method it is picked for).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

BINS = 1001  # thresholds in steps of 0.001


@dataclass(frozen=True)
class Scores:
    threshold: float
    precision: float
    recall: float
    iou: float
    f1: float

    def row(self, name: str) -> str:
        return (f"| {name} | {self.threshold:.3f} | {self.precision:.3f} | {self.recall:.3f} | {self.iou:.3f} | "
                f"{self.f1:.3f} |")


def scores(tp: float, fp: float, fn: float, threshold: float) -> Scores:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    iou = tp / (tp + fp + fn) if tp + fp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return Scores(threshold, precision, recall, iou, f1)


class Tally:
    """Histograms of a detector's scores in [0, 1] on damaged and intact pixels, over many images."""

    def __init__(self) -> None:
        self.damaged = torch.zeros(BINS, dtype=torch.float64)
        self.intact = torch.zeros(BINS, dtype=torch.float64)

    def add(self, score: Tensor, truth: Tensor) -> None:
        """score and truth [B, 1, H, W]; truth 0/1."""
        if score.shape != truth.shape:
            raise ValueError(f"score shape {tuple(score.shape)} differs from truth shape {tuple(truth.shape)}")
        index = (score.detach().float().clamp(0, 1) * (BINS - 1)).round().long().flatten()
        damaged = truth.flatten() > 0.5
        self.damaged += torch.bincount(index[damaged], minlength=BINS).double()
        self.intact += torch.bincount(index[~damaged], minlength=BINS).double()

    def at(self, threshold: float) -> Scores:
        """Scores of `score >= threshold`."""
        start = min(BINS - 1, max(0, round(threshold * (BINS - 1))))
        tp = float(self.damaged[start:].sum())
        fp = float(self.intact[start:].sum())
        fn = float(self.damaged[:start].sum())
        return scores(tp, fp, fn, start / (BINS - 1))

    def best(self) -> Scores:
        """Scores at the threshold with the highest F1 (the oracle threshold for this set)."""
        tp = self.damaged.flip(0).cumsum(0).flip(0)
        fp = self.intact.flip(0).cumsum(0).flip(0)
        fn = self.damaged.sum() - tp
        f1 = 2 * tp / (2 * tp + fp + fn).clamp(min=1)
        start = int(f1[1:].argmax()) + 1  # threshold 0 marks everything
        return self.at(start / (BINS - 1))
