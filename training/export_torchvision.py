#!/usr/bin/env python3
"""Export a torchvision classifier to ONNX for `edgent model import`.

Debian's python3-torchvision ships the architectures without pretrained weights, so the weights are
deterministic random ones (seeded): the exported graph is the real architecture, op for op, which
is what import, partitioning and co-inference exercise; its accuracy means nothing, so the import
is given `--accuracy` (marked "supplied") unless you export trained weights of your own.

    /usr/bin/python3 training/export_torchvision.py squeezenet1_1 --out squeezenet1_1.onnx
    npx edgent model import squeezenet1_1.onnx --preprocess scale=1/255,mean=0.485/0.456/0.406,std=0.229/0.224/0.225 --accuracy 0.5

`--tiny` builds the same architecture class at a small width and depth (the same op types, a file of
kilobytes to a few megabytes, e.g. for test fixtures): ConvNeXt with two stages of one block, a
ViT of two encoder layers, ShuffleNet V2 at width 0.5 and MNASNet at 0.25.

Exported at opset 14 by default, batch 1, input "input" [1, 3, S, S], output "logits".
"""
import argparse
from functools import partial

import torch
import torchvision
from torchvision.models import convnext, vision_transformer

ARCHS = [
    'alexnet', 'vgg11', 'vgg11_bn', 'vgg16', 'vgg16_bn', 'resnet18', 'resnet50', 'mobilenet_v2', 'mobilenet_v3_small',
    'mobilenet_v3_large', 'squeezenet1_1', 'googlenet', 'densenet121', 'efficientnet_b0', 'regnet_y_400mf',
    'mnasnet0_5', 'shufflenet_v2_x1_0', 'convnext_tiny', 'vit_b_16'
]


def tiny(arch: str, size: int, classes: int) -> torch.nn.Module:
    """The architecture's own class, small: the same op types as the full network."""
    if arch == 'convnext_tiny':
        cfg = [convnext.CNBlockConfig(16, 32, 1), convnext.CNBlockConfig(32, None, 1)]
        return convnext.ConvNeXt(cfg, stochastic_depth_prob=0.0, num_classes=classes)
    if arch == 'vit_b_16':
        return vision_transformer.VisionTransformer(image_size=size, patch_size=size // 4, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64,
                                                    num_classes=classes)
    if arch == 'shufflenet_v2_x1_0':
        return torchvision.models.shufflenet_v2_x0_5(weights=None, num_classes=classes)
    if arch == 'mnasnet0_5':
        return torchvision.models.MNASNet(0.25, num_classes=classes)
    raise SystemExit(f'--tiny: no small form of {arch} (convnext_tiny, vit_b_16, shufflenet_v2_x1_0, mnasnet0_5)')


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('arch', choices=ARCHS)
    p.add_argument('--out', required=True, help='the .onnx file to write')
    p.add_argument('--size', type=int, default=224, help='input height and width (default 224)')
    p.add_argument('--classes', type=int, default=1000, help='number of classes (default 1000)')
    p.add_argument('--opset', type=int, default=14, help='ONNX opset (default 14)')
    p.add_argument('--tiny', action='store_true', help='the same architecture, small (for test fixtures)')
    p.add_argument('--seed', type=int, default=2018)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    if a.tiny:
        model = tiny(a.arch, a.size, a.classes)
    else:
        kwargs = {'weights': None, 'num_classes': a.classes}
        if a.arch == 'googlenet':
            kwargs.update(aux_logits=False, init_weights=True)
        if a.arch == 'vit_b_16':
            kwargs.update(image_size=a.size)
        model = getattr(torchvision.models, a.arch)(**kwargs)
    model = model.eval()
    x = torch.randn(1, 3, a.size, a.size)
    # With gradients on, nn.MultiheadAttention (ViT) takes its exportable path, not the fused
    # `_native_multi_head_attention` kernel torch 1.13 cannot export; eval() keeps dropout off.
    torch.onnx.export(model, x, a.out, opset_version=a.opset, input_names=['input'], output_names=['logits'], do_constant_folding=True)
    params = sum(t.numel() for t in model.parameters())
    print(f'wrote {a.out}: torchvision {torchvision.__version__} {a.arch}{" (tiny)" if a.tiny else ""}, input [1, 3, {a.size}, {a.size}], '
          f'{a.classes} classes, {params:,} parameters, opset {a.opset}, seed {a.seed}')


if __name__ == '__main__':
    main()
