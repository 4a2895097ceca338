"""The data layer's arrays as float tensors at a chapter's resolution.

- :func:`load_segmentation_tensors`: a segmentation split whose images share one size,
  reduced by an integer factor (CamVid for IBA);
- :func:`resize_square`: uint8 images and integer masks of any size resized to a square
  input (as SAM-Adapter does);
- :func:`horse_split`: Weizmann Horse split by a seeded permutation, at the original sizes
  (BadSAM pastes its trigger before the resize to the model's input).

Images come back as float ``[N, 3, H, W]`` in [0, 1] and label maps as long ``[N, H, W]``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from .datasets import SegmentationArrays, load_segmentation


@dataclass(frozen=True)
class SegmentationTensors:
    """``images`` float ``[N, 3, H, W]`` in [0, 1], ``labels`` long ``[N, H, W]`` (255 = ignore)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    ignore_index: int

    def __len__(self) -> int:
        return len(self.images)


def load_segmentation_tensors(name: str, split: str, downsample: int = 1) -> SegmentationTensors:
    """Load a segmentation split whose images share one size, reduced by an integer factor.

    Images are box-averaged over ``downsample x downsample`` blocks; label maps keep the
    top-left label of each block (nearest neighbour, so no label is invented).
    """
    if downsample < 1:
        raise ValueError(f"downsample must be a positive integer, got {downsample}")
    arrays = load_segmentation(name, split)
    shapes = {m.shape for m in arrays.masks}
    if len(shapes) != 1:
        raise ValueError(
            f"{name} {split}: images come in {len(shapes)} sizes; this loader needs one size"
        )
    images = torch.from_numpy(np.stack(arrays.images)).permute(0, 3, 1, 2).float().div_(255)
    labels = torch.from_numpy(np.stack(arrays.masks)).long()
    if downsample > 1:
        images = F.avg_pool2d(images, downsample)
        labels = labels[:, ::downsample, ::downsample][
            :, : images.shape[2], : images.shape[3]
        ].contiguous()
    ignore = 255 if arrays.ignore_index is None else arrays.ignore_index
    return SegmentationTensors(images, labels, list(arrays.classes), ignore)


def resize_square(images: list, masks: list, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize uint8 ``[H, W, 3]`` images and integer ``[H, W]`` masks to ``size x size`` (as
    SAM-Adapter does).

    Returns float images ``[N, 3, size, size]`` in [0, 1] (bilinear, antialiased) and long masks
    ``[N, size, size]`` (nearest neighbour, so class ids survive).
    """
    if len(images) != len(masks):
        raise ValueError(f"{len(images)} images but {len(masks)} masks")
    out_images, out_masks = [], []
    for image, mask in zip(images, masks):
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        out_images.append(
            F.interpolate(
                x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
            ).clamp(0, 1)[0]
        )
        m = torch.from_numpy(mask.astype("int64"))[None, None].float()
        out_masks.append(F.interpolate(m, size=(size, size), mode="nearest")[0, 0].long())
    return torch.stack(out_images), torch.stack(out_masks)


def horse_split(test_images: int, seed: int = 0) -> tuple[SegmentationArrays, SegmentationArrays]:
    """Weizmann Horse split into ``(fine-tuning, test)`` by a seeded permutation, not resized.

    The images keep their original sizes (uint8 ``[H, W, 3]``, masks ``[H, W]`` in {0, 1}), so
    that a trigger can be pasted at the original resolution before :func:`resize_square` makes
    the model's square inputs. The first ``test_images`` of the permutation are the test split.
    """
    horses = load_segmentation("weizmann_horse", "all")
    if not 0 < test_images < len(horses.images):
        raise ValueError(f"test_images must lie in 1..{len(horses.images) - 1}, got {test_images}")
    order = torch.randperm(len(horses.images), generator=torch.Generator().manual_seed(seed))

    def part(indices: torch.Tensor, split: str) -> SegmentationArrays:
        return replace(
            horses,
            images=[horses.images[i] for i in indices.tolist()],
            masks=[horses.masks[i] for i in indices.tolist()],
            split=split,
        )

    return part(order[test_images:], "fine-tuning"), part(order[:test_images], "test")
