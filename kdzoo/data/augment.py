"""CIFAR augmentation, batched on the training device.

RandomCrop(S, padding=P) + RandomHorizontalFlip + ToTensor + Normalize, as torchvision applies them
image by image, computed for a whole uint8 batch in one gather: each output pixel reads the padded
input at (top + y, left + x), or (top + y, left + S - 1 - x) when the image is flipped. The random
draws come from one generator on the device, whose state is saved in checkpoints.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kdzoo.utils import comm


@dataclass
class CropFlipParams:
    """Per-image draws: ``top``, ``left`` (``[B]`` int64 offsets into the padded image), ``flip``
    (``[B]`` bool)."""

    top: torch.Tensor
    left: torch.Tensor
    flip: torch.Tensor


class BatchAugmentation:
    """Random crop with zero padding, horizontal flip and normalisation of uint8 batches.

    Args:
        size: output side S.
        padding: zeros added on each side before cropping (4 on CIFAR; 0 when workers crop).
        hflip: flip each image with probability 0.5.
        mean, std: per-channel statistics of [0, 1] pixels.
        device: where images arrive and the random draws happen.
        seed: seed of the augmentation generator.
        memory_format: of the float output (``torch.channels_last`` for NHWC models).
    """

    def __init__(
        self,
        size: int,
        padding: int,
        hflip: bool,
        mean: list[float],
        std: list[float],
        device: torch.device,
        seed: int,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> None:
        self.size = size
        self.padding = padding
        self.hflip = hflip
        self.device = torch.device(device)
        self.memory_format = memory_format
        # x / 255 then (x - mean) / std, folded into one multiply-add.
        std_t = torch.tensor(std, device=self.device).view(1, 3, 1, 1)
        self._scale = 1.0 / (255.0 * std_t)
        self._shift = -torch.tensor(mean, device=self.device).view(1, 3, 1, 1) / std_t
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)

    def sample(self, batch_size: int, height: int, width: int) -> CropFlipParams:
        """Draw offsets uniformly in ``[0, H + 2P - S]`` (as RandomCrop does) and coin flips."""
        span_y = height + 2 * self.padding - self.size + 1
        span_x = width + 2 * self.padding - self.size + 1
        if span_y < 1 or span_x < 1:
            raise ValueError(f"cannot crop {self.size}x{self.size} from {height}x{width} images")
        kw = {"generator": self.generator, "device": self.device}
        top = torch.randint(0, span_y, (batch_size,), **kw)
        left = torch.randint(0, span_x, (batch_size,), **kw)
        if self.hflip:
            flip = torch.rand(batch_size, **kw) < 0.5
        else:
            flip = torch.zeros(batch_size, dtype=torch.bool, device=self.device)
        return CropFlipParams(top, left, flip)

    def apply(self, images: torch.Tensor, params: CropFlipParams) -> torch.Tensor:
        """Crop, flip, normalise: uint8 ``images`` ``[B, 3, H, W]`` -> float ``[B, 3, S, S]``."""
        p, s = self.padding, self.size
        padded = F.pad(images, (p, p, p, p)) if p else images
        b, c, _, width = padded.shape
        steps = torch.arange(s, device=images.device)
        rows = params.top[:, None] + steps  # [B, S]
        cols = params.left[:, None] + torch.where(params.flip[:, None], s - 1 - steps, steps)
        # Two gathers (rows, then columns) on uint8: 3x faster on CPU than one 4-index lookup.
        crops = padded.gather(2, rows[:, None, :, None].expand(b, c, s, width))
        crops = crops.gather(3, cols[:, None, None, :].expand(b, c, s, s))
        return self.normalize(crops)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, 3, H, W]`` -> normalised float32 ``[B, 3, H, W]`` (test-time input)."""
        out = images.to(dtype=torch.float32, memory_format=self.memory_format)
        return out.mul_(self._scale).add_(self._shift)

    def __call__(self, images: torch.Tensor, num_views: int = 1) -> list[torch.Tensor]:
        """``num_views`` independently augmented views of a uint8 batch, each ``[B, 3, S, S]``.

        Every rank draws the parameters of the whole global batch from the same generator and
        uses its own slice, so N processes augment each image exactly as one process would.
        """
        b, _, h, w = images.shape
        start = comm.get_rank() * b
        views = []
        for _ in range(num_views):
            params = self.sample(b * comm.get_world_size(), h, w)
            mine = CropFlipParams(
                *(t[start : start + b] for t in (params.top, params.left, params.flip))
            )
            views.append(self.apply(images, mine))
        return views

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
