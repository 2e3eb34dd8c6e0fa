#!/usr/bin/env python3
"""Write Fashion-MNIST frames as the camera model takes them: 3×96×96 bytes per image, idx files.

The same resize as training/train_camera.py (bilinear, rounded to bytes, the grey plane repeated into
three channels), so a labelled set made here is what the shipped camera model saw. Used to add exits
to the camera model's backbone (`edgent model exits add`) on frames it was trained on:

    /usr/bin/python3 training/camera_frames.py --split train --count 10000 --out /tmp/frames
    # → /tmp/frames/train-images-idx3-ubyte, /tmp/frames/train-labels-idx1-ubyte
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train import load_fashion, write_idx  # noqa: E402
from train_camera import resize  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--split', choices=['train', 'test'], default='train')
    p.add_argument('--count', type=int, default=0, help='the first N images (default: all)')
    p.add_argument('--out', required=True, help='folder for <split>-images-idx3-ubyte and <split>-labels-idx1-ubyte')
    a = p.parse_args()
    x_tr, y_tr, x_te, y_te, _classes, _name = load_fashion()
    x, y = (x_tr, y_tr) if a.split == 'train' else (x_te, y_te)
    if a.count:
        x, y = x[:a.count], y[:a.count]
    x3 = np.repeat(resize(x), 3, axis=1)
    os.makedirs(a.out, exist_ok=True)
    write_idx(os.path.join(a.out, f'{a.split}-images-idx3-ubyte'), x3)
    write_idx(os.path.join(a.out, f'{a.split}-labels-idx1-ubyte'), y)
    print(f'wrote {len(y)} {a.split} frames {x3.shape[1:]} to {a.out}')


if __name__ == '__main__':
    main()
