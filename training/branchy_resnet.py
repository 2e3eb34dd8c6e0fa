"""BranchyNet-style residual network at camera resolution (3×96×96), five exits.

The shipped AlexNet sees 28×28 images: every activation of it is larger than its input, so a
middle partition can never upload less than edge-only. A camera frame is large; a network
shrinks it fast (a strided stem and a pool take 96×96 to 24×24) and spends most of its compute
afterwards, on small, wide feature maps — the shape of ResNet and MobileNet stages, and the shape
where the paper (and Neurosurgeon before it) found middle partitions: the device runs the cheap
front, uploads an activation far smaller than the frame, and the edge runs the expensive back.

    stem   conv 3→24 3×3/2 + BN + ReLU        96→48
    pool   max 2×2/2                          48→24   (24×24×24)
    block1 residual 24→24                     24×24   → exit 1
    block2 residual 24→48 /2 (1×1 shortcut)   12×12   → exit 2
    block3 residual 48→64 /2 (1×1 shortcut)    6×6    → exit 3  (2,304 values: 1/12 of the frame's bytes)
    block4 residual 64→256 (1×1 shortcut)      6×6    → exit 4
    block5 residual 256→256                    6×6
    block6 residual 256→256                    6×6    → exit 5

The front (stem to block3) is 11 % of the multiply-accumulates (14 of 127 million), the back 89 %.

Residual blocks are BasicBlocks (He et al. 2016): conv-BN-ReLU-conv-BN, plus the shortcut, then
ReLU; BN folds into the convolutions at export (eval mode). Each exit is a BranchyNet side branch:
average-pool to 2×2, flatten, fc, softmax (the last exit: global average pool, fc, softmax).
"""
import torch
import torch.nn as nn


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class Branch(nn.Module):
    """A BranchyNet side branch: average pool to `grid`×`grid`, flatten, fc."""

    def __init__(self, channels, grid, classes):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.fc = nn.Linear(channels * grid * grid, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(x), 1))


class BranchyResNet96(nn.Module):
    # (name, in channels, out channels, stride); an exit after the names in EXITS_AFTER
    BLOCKS = [("block1", 24, 24, 1), ("block2", 24, 48, 2), ("block3", 48, 64, 2), ("block4", 64, 256, 1),
              ("block5", 256, 256, 1), ("block6", 256, 256, 1)]
    EXITS_AFTER = {"block1": 2, "block2": 2, "block3": 2, "block4": 2, "block6": 1}

    def __init__(self, in_ch=3, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_ch, 24, 3, 2, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU(inplace=True))
        self.pool = nn.MaxPool2d(2, 2)
        self.blocks = nn.ModuleDict({n: BasicBlock(cin, cout, s) for n, cin, cout, s in self.BLOCKS})
        widths = {n: cout for n, _, cout, _ in self.BLOCKS}
        self.exits = nn.ModuleList([Branch(widths[n], g, classes) for n, g in self.EXITS_AFTER.items()])
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x, logits=True):
        x = self.pool(self.stem(x))
        outs = []
        k = 0
        for name, block in self.blocks.items():
            x = block(x)
            if name in self.EXITS_AFTER:
                outs.append(self.exits[k](x))
                k += 1
        return outs if logits else [torch.softmax(o, 1) for o in outs]
