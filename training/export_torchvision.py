#!/usr/bin/env python3
"""Export a torchvision classifier to ONNX for `edgent model import`.

Debian's python3-torchvision ships the architectures without pretrained weights, so the weights are
deterministic random ones (seeded): the exported graph is the real architecture, op for op, which
is what import, partitioning and co-inference exercise; its accuracy means nothing, so the import
is given `--accuracy` (marked "supplied") unless you export trained weights of your own.

    /usr/bin/python3 training/export_torchvision.py squeezenet1_1 --out squeezenet1_1.onnx
    npx edgent model import squeezenet1_1.onnx --preprocess scale=1/255,mean=0.485/0.456/0.406,std=0.229/0.224/0.225 --accuracy 0.5

Exported at opset 13, batch 1, input "input" [1, 3, S, S], output "logits".
"""
import argparse

import torch
import torchvision

ARCHS = ['alexnet', 'vgg11', 'vgg16', 'vgg16_bn', 'resnet18', 'resnet50', 'mobilenet_v2', 'mobilenet_v3_small', 'mobilenet_v3_large', 'squeezenet1_1', 'googlenet']


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('arch', choices=ARCHS)
    p.add_argument('--out', required=True, help='the .onnx file to write')
    p.add_argument('--size', type=int, default=224, help='input height and width (default 224)')
    p.add_argument('--classes', type=int, default=1000, help='number of classes (default 1000)')
    p.add_argument('--seed', type=int, default=2018)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    kwargs = {'weights': None, 'num_classes': a.classes}
    if a.arch == 'googlenet':
        kwargs.update(aux_logits=False, init_weights=True)
    model = getattr(torchvision.models, a.arch)(**kwargs).eval()
    x = torch.randn(1, 3, a.size, a.size)
    with torch.no_grad():
        torch.onnx.export(model, x, a.out, opset_version=13, input_names=['input'], output_names=['logits'], do_constant_folding=True)
    print(f'wrote {a.out}: torchvision {torchvision.__version__} {a.arch}, input [1, 3, {a.size}, {a.size}], {a.classes} classes, seed {a.seed}')


if __name__ == '__main__':
    main()
