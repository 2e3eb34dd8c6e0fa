#!/usr/bin/env python3
"""Train, evaluate and export the shipped five-exit BranchyNet AlexNet.

    python3 training/train.py                       # Fashion-MNIST from Debian's dataset-fashion-mnist
    python3 training/train.py --cifar10 DIR         # CIFAR-10 in its standard python layout (data_batch_1..5, test_batch)

Writes resources/models/<id>/: model.onnx (one output per exit), manifest.json (layers with boundary
tensors, per-exit accuracy on the full test set, preprocessing, training record) and a sample set of
test images in MNIST idx format. Fixed seeds; deterministic single-process data order.
Needs Debian's python3-torch, python3-onnx, python3-numpy (run with /usr/bin/python3).
"""
import argparse, gzip, hashlib, json, os, pickle, struct, sys, time
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from branchy_alexnet import BranchyAlexNet  # noqa: E402

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# BranchyNet's joint loss: a weighted sum of every exit's cross-entropy. The final exit weighs most
# so that the side branches do not pull the trunk towards their own (shallower) optimum.
EXIT_WEIGHTS = [0.5, 0.5, 0.5, 0.5, 1.0]


def read_idx(path):
    """MNIST idx format (optionally gzipped): returns a uint8 array."""
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = data[0:2], data[2], data[3]
    if zero != b"\x00\x00" or dtype != 0x08:
        raise ValueError(f"{path}: not an idx file of unsigned bytes")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def write_idx(path, arr):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 0x08, arr.ndim]))
        f.write(struct.pack(">" + "I" * arr.ndim, *arr.shape))
        f.write(arr.tobytes())


def load_fashion():
    x_tr = read_idx(f"{FASHION_DIR}/train-images-idx3-ubyte.gz")[:, None]
    y_tr = read_idx(f"{FASHION_DIR}/train-labels-idx1-ubyte.gz")
    x_te = read_idx(f"{FASHION_DIR}/t10k-images-idx3-ubyte.gz")[:, None]
    y_te = read_idx(f"{FASHION_DIR}/t10k-labels-idx1-ubyte.gz")
    return x_tr, y_tr, x_te, y_te, FASHION_CLASSES, "fashion-mnist"


def load_cifar(d):
    def batch(name):
        with open(os.path.join(d, name), "rb") as f:
            b = pickle.load(f, encoding="bytes")
        return np.asarray(b[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32), np.asarray(b[b"labels"], dtype=np.uint8)
    parts = [batch(f"data_batch_{i}") for i in range(1, 6)]
    x_te, y_te = batch("test_batch")
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), x_te, y_te,
            CIFAR_CLASSES, "cifar-10")


def evaluate(model, x, y, mean, std, batch=500, to_input=None):
    """Top-1 of every exit over (x, y); `to_input(pixels, mean, std)` makes a batch (default: scale and normalise)."""
    model.eval()
    correct = None
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = to_input(x[i:i + batch], mean, std) if to_input else (torch.from_numpy(x[i:i + batch]).float() / 255.0 - mean) / std
            outs = model(xb)
            hits = [int((o.argmax(1).numpy() == y[i:i + batch]).sum()) for o in outs]
            correct = hits if correct is None else [a + b for a, b in zip(correct, hits)]
    return [c / len(x) for c in correct]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cifar10", metavar="DIR", help="train on CIFAR-10 from DIR (python layout) instead of Fashion-MNIST")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=2018)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=2000, help="test images shipped as the agent's input source")
    ap.add_argument("--out", default=None, help="output folder (default resources/models/<id>)")
    ap.add_argument("--id", default=None)
    ap.add_argument("--train-limit", type=int, default=0, help="train on the first N images only (smoke tests)")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(args.threads)  # Debian's torch starts with one thread

    x_tr, y_tr, x_te, y_te, classes, dataset = load_cifar(args.cifar10) if args.cifar10 else load_fashion()
    if args.train_limit:
        x_tr, y_tr = x_tr[:args.train_limit], y_tr[:args.train_limit]
    model_id = args.id or ("branchy-alexnet" if dataset == "fashion-mnist" else "branchy-alexnet-cifar10")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = args.out or os.path.join(root, "resources", "models", model_id)
    os.makedirs(out, exist_ok=True)

    in_ch, size = x_tr.shape[1], x_tr.shape[2]
    # Per-channel statistics of the training set, applied to raw uint8 pixels scaled to [0, 1].
    mean_c = (x_tr.reshape(len(x_tr), in_ch, -1).astype(np.float64) / 255.0).mean(axis=(0, 2))
    std_c = (x_tr.reshape(len(x_tr), in_ch, -1).astype(np.float64) / 255.0).std(axis=(0, 2))
    mean = torch.tensor(mean_c, dtype=torch.float32).view(1, in_ch, 1, 1)
    std = torch.tensor(std_c, dtype=torch.float32).view(1, in_ch, 1, 1)

    model = BranchyAlexNet(in_ch=in_ch, size=size, classes=len(classes))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps_per_epoch = (len(x_tr) + args.batch - 1) // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch)
    gen = np.random.default_rng(args.seed)
    t0 = time.time()
    history = []
    for epoch in range(args.epochs):
        model.train()
        order = gen.permutation(len(x_tr))
        running = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * args.batch:(step + 1) * args.batch]
            xb = (torch.from_numpy(x_tr[idx]).float() / 255.0 - mean) / std
            flip = torch.from_numpy(gen.random(len(idx)) < 0.5)
            xb[flip] = xb[flip].flip(3)  # horizontal flip: label-preserving for both data sets
            yb = torch.from_numpy(y_tr[idx].astype(np.int64))
            outs = model(xb)
            loss = sum(w * F.cross_entropy(o, yb) for w, o in zip(EXIT_WEIGHTS, outs))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            running += float(loss)
            if step % 50 == 0:
                print(f"epoch {epoch + 1}/{args.epochs} step {step}/{steps_per_epoch} loss {float(loss):.4f} "
                      f"elapsed {time.time() - t0:.0f}s", flush=True)
        history.append({"epoch": epoch + 1, "meanLoss": running / steps_per_epoch, "elapsedS": round(time.time() - t0, 1)})
        torch.save(model.state_dict(), os.path.join(out, "checkpoint.pt"))
    train_s = time.time() - t0

    acc = evaluate(model, x_te, y_te, mean, std)
    print("test accuracy per exit:", [round(a, 4) for a in acc], flush=True)
    export(model, out, model_id, classes, dataset, in_ch, size, mean_c, std_c, acc, len(x_te), args, train_s, history, len(x_tr))
    write_idx(os.path.join(out, "samples-images-idx3-ubyte"), x_te[:args.samples].reshape(args.samples, *x_te.shape[2:]) if in_ch == 1 else x_te[:args.samples])
    write_idx(os.path.join(out, "samples-labels-idx1-ubyte"), y_te[:args.samples])
    ckpt = os.path.join(out, "checkpoint.pt")
    if os.path.exists(ckpt):
        os.remove(ckpt)
    print("wrote", out, flush=True)


def export(model, out, model_id, classes, dataset, in_ch, size, mean_c, std_c, acc, n_test, args, train_s, history, train_n):
    import onnx
    model.eval()
    onnx_path = os.path.join(out, "model.onnx")
    n_exits = len(acc)
    output_names = [f"exit{i + 1}" for i in range(n_exits)]

    class Export(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return tuple(self.m(x, logits=False))

    dummy = torch.zeros(1, in_ch, size, size)
    torch.onnx.export(Export(model), dummy, onnx_path, opset_version=13, input_names=["input"],
                      output_names=output_names, do_constant_folding=True)

    # Give every layer's output tensor its layer id as name: the manifest's boundary tensors.
    g = onnx.load(onnx_path)
    paths = model.exit_paths()
    layer_ids = [lid for p in paths.values() for lid, _ in p]
    node_of = {}
    for node in g.graph.node:
        parts = node.name.strip("/").split("/")
        # torch names nodes by module scope: /m/layers/<id>/<Op>
        if len(parts) >= 3 and parts[-2] in layer_ids:
            node_of.setdefault(parts[-2], []).append(node)
    rename = {}
    exit_out = {}
    for e, path in paths.items():
        exit_out[path[-1][0]] = f"exit{e}"
    for lid in dict.fromkeys(layer_ids):
        nodes = node_of.get(lid)
        if not nodes:
            raise SystemExit(f"export: no ONNX node found for layer {lid}")
        last = nodes[-1].output[0]
        rename[last] = exit_out.get(lid, lid)
    for node in g.graph.node:
        node.output[:] = [rename.get(o, o) for o in node.output]
        node.input[:] = [rename.get(i, i) for i in node.input]
    for o in g.graph.output:
        if o.name in rename:
            o.name = rename[o.name]
    g.producer_name = "edgent-training"
    onnx.checker.check_model(g)
    onnx.save(g, onnx_path)
    onnx_bytes = os.path.getsize(onnx_path)
    with open(onnx_path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()

    # Layer records: shapes from a traced forward pass, attributes from the modules.
    shapes = {}
    x = torch.zeros(1, in_ch, size, size)
    with torch.no_grad():
        for e, path in paths.items():
            y = x
            for lid, _ in path:
                shape_in = list(y.shape)
                y = model.layers[lid](y)
                shapes[lid] = (shape_in, list(y.shape))
    layers = []
    prev_of = {}
    for e, path in paths.items():
        prev = "input"
        for lid, _ in path:
            prev_of.setdefault(lid, prev)
            prev = exit_out.get(lid, lid)
    for lid in dict.fromkeys(layer_ids):
        ltype = next(t for p in paths.values() for l, t in p if l == lid)
        mod = model.layers[lid]
        shp_in, shp_out = shapes[lid]
        rec = {
            "id": lid, "type": ltype, "inputShape": shp_in, "outputShape": shp_out,
            "outputBytes": int(np.prod(shp_out)) * 4,
            "input": prev_of[lid], "output": exit_out.get(lid, lid),
        }
        if ltype == "conv":
            rec.update(kernel=list(mod.kernel_size), stride=list(mod.stride), padding=list(mod.padding), filters=mod.out_channels)
        elif ltype == "pool":
            k, s, p = mod.kernel_size, mod.stride, mod.padding
            rec.update(kernel=[k, k] if isinstance(k, int) else list(k), stride=[s, s] if isinstance(s, int) else list(s),
                       padding=[p, p] if isinstance(p, int) else list(p), op="max")
        elif ltype == "fc":
            rec.update(units=mod.out_features)
        elif ltype == "lrn":
            rec.update(size=mod.size, alpha=mod.alpha, beta=mod.beta, bias=mod.k)
        elif ltype == "dropout":
            rec.update(ratio=mod.p)
        layers.append(rec)
    manifest = {
        "schema": 1,
        "id": model_id,
        "name": f"BranchyNet AlexNet, five exits, {dataset}",
        "onnx": "model.onnx",
        "onnxBytes": onnx_bytes,
        "sha256": sha,
        "opset": 13,
        "input": {"name": "input", "shape": [1, in_ch, size, size], "dtype": "float32"},
        "preprocessing": {
            "from": "uint8", "layout": "NCHW", "scale": 1 / 255.0,
            "mean": [float(m) for m in mean_c], "std": [float(s) for s in std_c],
            "formula": "x = (pixel * scale - mean[c]) / std[c]",
        },
        "classes": classes,
        "layers": layers,
        "exits": [
            {"exit": e, "layers": [lid for lid, _ in paths[e]], "accuracy": round(acc[e - 1], 6),
             "testSamples": n_test, "output": f"exit{e}"}
            for e in sorted(paths)
        ],
        "samples": {"images": "samples-images-idx3-ubyte", "labels": "samples-labels-idx1-ubyte", "count": args.samples,
                    "source": f"the first {args.samples} images of the {dataset} test set"},
        "training": {
            "dataset": dataset, "trainSamples": int(train_n), "epochs": args.epochs, "batch": args.batch, "optimizer": "Adam",
            "lr": args.lr, "schedule": "one-cycle", "seed": args.seed, "threads": args.threads,
            "exitLossWeights": EXIT_WEIGHTS, "augmentation": "random horizontal flip",
            "trainSeconds": round(train_s, 1), "history": history, "torch": torch.__version__,
            "trainedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": "python3 training/train.py" + (" --cifar10 DIR" if dataset == "cifar-10" else ""),
        },
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
