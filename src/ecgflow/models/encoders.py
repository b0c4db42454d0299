"""ECG signal encoders: 1-D xresnet-style CNNs, inception1d and a 1-D vision transformer.

Every encoder maps a float32 batch ``[B, C, T]`` to features ``[B, out_dim]`` and exposes
``out_dim`` so heads can be sized without running a forward pass.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ecgflow.models.configs import EncoderConfig
from ecgflow.plugins import Registry

#: encoder kind (``EncoderConfig.kind``) → the module class, built from the config
ENCODERS: Registry[Callable[[EncoderConfig], nn.Module]] = Registry("encoder kind")


def _conv_bn(
    c_in: int, c_out: int, kernel_size: int, stride: int = 1, relu: bool = True
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv1d(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
        nn.BatchNorm1d(c_out),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ConcatPool1d(nn.Module):
    """Average and max pooling over time, concatenated: ``[B, C, T]`` → ``[B, 2C]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool ``[B, C, T]`` into ``[B, 2C]``."""
        return torch.cat([x.mean(dim=-1), x.amax(dim=-1)], dim=1)


def kaiming_init_convs(model: nn.Module) -> None:
    """He-normal initialisation (ReLU gain) of every ``Conv1d`` weight in ``model``."""
    for module in model.modules():
        if isinstance(module, nn.Conv1d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")


class BasicBlock1d(nn.Module):
    """Two conv-BN layers with a residual connection; the last BN starts at zero gamma."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv_bn(c_in, c_out, kernel_size, stride=stride)
        self.conv2 = _conv_bn(c_out, c_out, kernel_size, relu=False)
        nn.init.zeros_(self.conv2[1].weight)
        self.shortcut: nn.Module = (
            _conv_bn(c_in, c_out, 1, stride=stride, relu=False)
            if stride != 1 or c_in != c_out
            else nn.Identity()
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``[B, c_in, T]``."""
        return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


@ENCODERS.register("resnet1d")
class ResNet1d(nn.Module):
    """An xresnet1d-style CNN with concat (average + max) pooling.

    Stem: three conv-BN-ReLU layers (the first with stride 2) and a max-pool. Then ``depth``
    stages of two :class:`BasicBlock1d`; stage ``i`` has ``width * min(2**i, 8)`` channels and
    every stage after the first halves the length.
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        k, width = config.kernel_size, config.width
        stem_width = max(width // 2, 1)
        self.stem = nn.Sequential(
            _conv_bn(config.in_channels, stem_width, k, stride=2),
            _conv_bn(stem_width, stem_width, k),
            _conv_bn(stem_width, width, k),
            nn.MaxPool1d(kernel_size=3, stride=2, padding=1),
        )
        stages: list[nn.Module] = []
        c_in = width
        for i in range(config.depth):
            c_out = width * min(2**i, 8)
            stride = 1 if i == 0 else 2
            stages.append(
                nn.Sequential(
                    BasicBlock1d(c_in, c_out, k, stride=stride),
                    BasicBlock1d(c_out, c_out, k),
                )
            )
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.pool = ConcatPool1d()
        self.out_dim: int = 2 * c_in
        kaiming_init_convs(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``[B, C, T]`` into ``[B, out_dim]``."""
        return self.pool(self.stages(self.stem(x)))


class Bottleneck1d(nn.Module):
    """xresnet bottleneck: 1x1 → k (with the stride) → 1x1 to ``4 * width``; zero-init last BN.

    The shortcut average-pools when strided and projects (1x1 conv + BN) when widths differ.
    """

    expansion = 4

    def __init__(self, c_in: int, width: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        c_out = width * self.expansion
        self.body = nn.Sequential(
            _conv_bn(c_in, width, 1),
            _conv_bn(width, width, kernel_size, stride=stride),
            _conv_bn(width, c_out, 1, relu=False),
        )
        nn.init.zeros_(self.body[2][1].weight)
        shortcut: list[nn.Module] = []
        if stride != 1:
            shortcut.append(nn.AvgPool1d(stride, ceil_mode=True))
        if c_in != c_out:
            shortcut.append(_conv_bn(c_in, c_out, 1, relu=False))
        self.shortcut = nn.Sequential(*shortcut)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``[B, c_in, T]``."""
        return self.relu(self.body(x) + self.shortcut(x))


#: xresnet1d depth → bottleneck blocks per stage
XRESNET_LAYERS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


@ENCODERS.register("xresnet1d")
class XResNet1d(nn.Module):
    """xresnet1d50 / xresnet1d101 of Strodthoff et al. 2020 (``depth`` 50 or 101).

    Stem: three conv-BN-ReLU layers (32, 32, ``width`` channels; the first with stride 2) and
    a max-pool; four stages of bottleneck blocks (:data:`XRESNET_LAYERS`) of ``width`` × 1, 2,
    4, 8 inner channels (× 4 out), every stage after the first halving the length; concat
    pooling, so ``out_dim = 2 * 32 * width``. The paper's configuration: width 64,
    kernel_size 5.
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        k, width = config.kernel_size, config.width
        self.stem = nn.Sequential(
            _conv_bn(config.in_channels, 32, k, stride=2),
            _conv_bn(32, 32, k),
            _conv_bn(32, width, k),
            nn.MaxPool1d(kernel_size=3, stride=2, padding=1),
        )
        blocks: list[nn.Module] = []
        c_in = width
        for i, n in enumerate(XRESNET_LAYERS[config.depth]):
            inner = width * 2**i
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(Bottleneck1d(c_in, inner, k, stride=stride))
                c_in = inner * Bottleneck1d.expansion
        self.stages = nn.Sequential(*blocks)
        self.pool = ConcatPool1d()
        self.out_dim: int = 2 * c_in
        kaiming_init_convs(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``[B, C, T]`` into ``[B, out_dim]``."""
        return self.pool(self.stages(self.stem(x)))


class InceptionBlock1d(nn.Module):
    """Inception block: 1x1 bottleneck, three kernel sizes and a max-pool branch in parallel.

    The branches are concatenated (``4 * width`` channels) and batch-normalised.
    """

    def __init__(self, c_in: int, width: int, kernel_sizes: list[int]) -> None:
        super().__init__()
        self.bottleneck = nn.Conv1d(c_in, width, 1, bias=False)
        self.convs = nn.ModuleList(
            nn.Conv1d(width, width, k, padding=k // 2, bias=False) for k in kernel_sizes
        )
        self.pool = nn.Sequential(
            nn.MaxPool1d(3, stride=1, padding=1), nn.Conv1d(c_in, width, 1, bias=False)
        )
        self.bn_relu = nn.Sequential(
            nn.BatchNorm1d((len(kernel_sizes) + 1) * width), nn.ReLU(inplace=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``[B, c_in, T]``; the length is kept."""
        h = self.bottleneck(x)
        return self.bn_relu(torch.cat([c(h) for c in self.convs] + [self.pool(x)], dim=1))


@ENCODERS.register("inception1d")
class Inception1d(nn.Module):
    """inception1d of Strodthoff et al. 2020 (PTB-XL benchmark; after InceptionTime).

    ``depth`` inception blocks of ``width`` filters per branch with kernel sizes
    ``kernel_size``, its half and its quarter (each made odd), so ``4 * width`` channels at full
    length; a residual shortcut (1x1 conv + BN) around every three blocks; concat (average +
    max) pooling, so ``out_dim = 8 * width``. The paper's configuration: width 32, depth 6,
    kernel_size 39 (from its ks=40).
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        kernel_sizes = [
            k if k % 2 else k - 1 for k in (config.kernel_size // 2**i for i in range(3))
        ]
        kernel_sizes = [max(k, 1) for k in kernel_sizes]
        channels = (len(kernel_sizes) + 1) * config.width
        self.blocks = nn.ModuleList(
            InceptionBlock1d(config.in_channels if d == 0 else channels, config.width, kernel_sizes)
            for d in range(config.depth)
        )
        self.shortcuts = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(config.in_channels if d == 0 else channels, channels, 1, bias=False),
                nn.BatchNorm1d(channels),
            )
            for d in range(config.depth // 3)
        )
        self.pool = ConcatPool1d()
        self.out_dim: int = 2 * channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``[B, C, T]`` into ``[B, out_dim]``."""
        residual = x
        for d, block in enumerate(self.blocks):
            x = block(x)
            if d % 3 == 2:
                x = torch.relu(x + self.shortcuts[d // 3](residual))
                residual = x
        return self.pool(x)


@ENCODERS.register("vit1d")
class ViT1d(nn.Module):
    """A 1-D vision transformer over non-overlapping signal patches.

    The input length is cropped to a multiple of ``patch_size``; each patch becomes one token.
    A learned [CLS] token and learned positional embeddings (for up to ``max_patches`` patches)
    are added, a pre-norm GELU transformer runs, and the output is the normalised CLS token.
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.patch_size = config.patch_size
        self.max_patches = config.max_patches
        width = config.width
        self.patch_embed = nn.Conv1d(
            config.in_channels, width, kernel_size=config.patch_size, stride=config.patch_size
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.max_patches + 1, width))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(
            d_model=width,
            nhead=config.heads,
            dim_feedforward=4 * width,
            dropout=config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(
            layer, num_layers=config.depth, enable_nested_tensor=False
        )
        self.norm = nn.LayerNorm(width)
        self.out_dim: int = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``[B, C, T]`` into ``[B, out_dim]``; raise ValueError for unusable lengths."""
        length = x.shape[-1]
        n_patches = length // self.patch_size
        if n_patches == 0:
            raise ValueError(
                f"input length {length} is shorter than one patch ({self.patch_size} samples)"
            )
        if n_patches > self.max_patches:
            raise ValueError(
                f"input length {length} gives {n_patches} patches of {self.patch_size} samples, "
                f"more than max_patches={self.max_patches}"
            )
        x = x[..., : n_patches * self.patch_size]
        tokens = self.patch_embed(x).transpose(1, 2)  # [B, N, width]
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1) + self.pos_embed[:, : n_patches + 1]
        h = self.transformer(self.dropout(tokens))
        return self.norm(h[:, 0])


def build_encoder(config: EncoderConfig) -> nn.Module:
    """The encoder ``config.kind`` names, mapping ``[B, C, T]`` to ``[B, out_dim]``."""
    return ENCODERS.get(config.kind)(config)
