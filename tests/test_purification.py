import pytest
import torch
from torchmetrics.image import PeakSignalNoiseRatio

from backdoorbook.evaluation.purification import psnr


def test_psnr_equals_torchmetrics_per_image():
    g = torch.Generator().manual_seed(0)
    reference = torch.rand(5, 3, 16, 16, generator=g)
    noise = (
        torch.randn(5, 3, 16, 16, generator=g)
        * torch.tensor([0.01, 0.03, 0.1, 0.2, 0.3])[:, None, None, None]
    )
    images = (reference + noise).clamp(0, 1)
    metric = PeakSignalNoiseRatio(data_range=1.0, reduction="none", dim=(1, 2, 3))
    ours = psnr(images, reference)
    torch.testing.assert_close(ours, metric(images, reference), atol=1e-4, rtol=0)
    assert torch.all(ours[:-1] > ours[1:])  # more noise, lower PSNR


def test_psnr_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="one shape"):
        psnr(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 4))
