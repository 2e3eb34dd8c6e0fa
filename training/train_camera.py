#!/usr/bin/env python3
"""Train the camera-resolution model (3×96×96, residual blocks, five exits) and ship it through
`edgent model import`, so that its manifest is generated exactly as a user's model's would be.

    /usr/bin/python3 training/train_camera.py                  # Fashion-MNIST resized to 96×96
    /usr/bin/python3 training/train_camera.py --cifar10 DIR    # CIFAR-10 (python layout) resized to 96×96

Fashion-MNIST is the only labelled image set reachable here: its 28×28 grey images are resized to
96×96 (bilinear, rounded to bytes: the "camera frame" every step sees, training and test alike) and
the grey plane is repeated into three channels. The network sees a 3×96×96 frame, but the scene
holds no more detail than 28×28: accuracies are Fashion-MNIST's, not a camera's.

Steps: train (BranchyNet joint loss, fixed seeds, 2 threads) → evaluate every exit on the full
test set → export ONNX (opset 13, one softmax output per exit) → write the test set as idx files
→ `node bin/edgent.js model import` (the console's import: graph analysis, cut points, generated
manifest, each exit's accuracy measured by onnxruntime on the 10,000 test images) into a scratch
data directory → move the imported folder to resources/models/<id>/ with its samples gzipped and
the training record (training.json) beside it. Its log is committed beside it (training-log.txt).
Needs Debian's python3-torch, python3-onnx, python3-numpy, and the built console (npx electron-vite build).
"""
import argparse, gzip, json, os, shutil, subprocess, sys, tempfile, time
import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from branchy_resnet import BranchyResNet96  # noqa: E402
from train import evaluate, load_cifar, load_fashion, write_idx  # noqa: E402

SIZE = 96
# BranchyNet's joint loss: every exit's cross-entropy, the final exit weighing most.
EXIT_WEIGHTS = [0.5, 0.5, 0.5, 0.5, 1.0]


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def resize(x, batch=2000):
    """uint8 N×C×h×w → uint8 N×C×96×96, bilinear, rounded (the frames every step sees)."""
    out = np.empty((len(x), x.shape[1], SIZE, SIZE), dtype=np.uint8)
    for i in range(0, len(x), batch):
        t = torch.from_numpy(x[i:i + batch]).float()
        r = F.interpolate(t, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        out[i:i + batch] = r.round().clamp(0, 255).to(torch.uint8).numpy()
    return out


def to_input(xb_u8, mean, std):
    x = torch.from_numpy(xb_u8).float() / 255.0
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return (x - mean) / std


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cifar10", metavar="DIR", help="train on CIFAR-10 from DIR (python layout) instead of Fashion-MNIST")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=2018)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-limit", type=int, default=0, help="train on the first N images only (smoke tests, timing)")
    ap.add_argument("--id", default=None)
    ap.add_argument("--out", default=None, help="the shipped folder (default resources/models/<id>)")
    ap.add_argument("--no-import", action="store_true", help="stop after the ONNX export and the idx files (in --work)")
    ap.add_argument("--work", default=None, help="scratch folder for the export and the test set (default: a temporary one)")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(args.threads)  # Debian's torch starts with one thread

    x_tr, y_tr, x_te, y_te, classes, dataset = load_cifar(args.cifar10) if args.cifar10 else load_fashion()
    if args.train_limit:
        x_tr, y_tr = x_tr[:args.train_limit], y_tr[:args.train_limit]
    model_id = args.id or ("branchy-resnet96" if dataset == "fashion-mnist" else "branchy-resnet96-cifar10")
    out = args.out or os.path.join(ROOT, "resources", "models", model_id)
    work = args.work or tempfile.mkdtemp(prefix="edgent-train-")
    os.makedirs(work, exist_ok=True)
    log(f"{dataset}: {len(x_tr)} training and {len(x_te)} test images {x_tr.shape[1:]} → resized to {x_tr.shape[1]}×{SIZE}×{SIZE}")
    x_tr, x_te = resize(x_tr), resize(x_te)

    in_ch = x_tr.shape[1]
    # Per-channel statistics of the resized training frames (the grey plane serves all three channels).
    flat = x_tr.reshape(len(x_tr), in_ch, -1)
    mean_c = np.array([float((flat[:, c].astype(np.float64) / 255.0).mean()) for c in range(in_ch)])
    std_c = np.array([float((flat[:, c].astype(np.float64) / 255.0).std()) for c in range(in_ch)])
    if in_ch == 1:
        mean_c, std_c = np.repeat(mean_c, 3), np.repeat(std_c, 3)
    mean = torch.tensor(mean_c, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(std_c, dtype=torch.float32).view(1, 3, 1, 1)

    model = BranchyResNet96(in_ch=3, classes=len(classes))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
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
            idx = np.sort(order[step * args.batch:(step + 1) * args.batch])
            xb = to_input(x_tr[idx], mean, std).contiguous()
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
            if step % 100 == 0:
                done = epoch * steps_per_epoch + step + 1
                eta = (time.time() - t0) / done * (args.epochs * steps_per_epoch - done)
                log(f"epoch {epoch + 1}/{args.epochs} step {step}/{steps_per_epoch} loss {float(loss):.4f} "
                    f"elapsed {time.time() - t0:.0f}s eta {eta:.0f}s")
        history.append({"epoch": epoch + 1, "meanLoss": round(running / steps_per_epoch, 5), "elapsedS": round(time.time() - t0, 1)})
        log(f"epoch {epoch + 1} mean loss {running / steps_per_epoch:.4f}")
    train_s = time.time() - t0

    acc = evaluate(model, x_te, y_te, mean, std, batch=250, to_input=to_input)
    log("test accuracy per exit (torch, full test set):", [round(a, 4) for a in acc])

    onnx_path = os.path.join(work, f"{model_id}.onnx")
    model.eval()

    class Export(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return tuple(self.m(x, logits=False))

    with torch.no_grad():
        torch.onnx.export(Export(model), torch.zeros(1, 3, SIZE, SIZE), onnx_path, opset_version=13, input_names=["input"],
                          output_names=[f"exit{i + 1}" for i in range(len(acc))], do_constant_folding=True)
    log(f"exported {onnx_path} ({os.path.getsize(onnx_path)} bytes)")
    # The test set as the model takes it: 3×96×96 bytes per image.
    x3 = np.repeat(x_te, 3, axis=1) if in_ch == 1 else x_te
    images, labels = os.path.join(work, "test-images-idx3-ubyte"), os.path.join(work, "test-labels-idx1-ubyte")
    write_idx(images, x3)
    write_idx(labels, y_te)
    with open(os.path.join(work, "classes.txt"), "w") as f:
        f.write("\n".join(classes) + "\n")
    record = {
        "model": model_id, "architecture": "training/branchy_resnet.py BranchyResNet96",
        "dataset": dataset, "resizedTo": [3, SIZE, SIZE],
        "resize": "bilinear (torch.nn.functional.interpolate, align_corners=False), rounded to bytes" +
                  ("; the grey plane repeated into three channels" if in_ch == 1 else ""),
        "trainSamples": int(len(x_tr)), "testSamples": int(len(x_te)), "epochs": args.epochs, "batch": args.batch,
        "optimizer": "AdamW (weight decay 1e-4)", "lr": args.lr, "schedule": "one-cycle", "seed": args.seed,
        "threads": args.threads, "exitLossWeights": EXIT_WEIGHTS, "augmentation": "random horizontal flip",
        "trainSeconds": round(train_s, 1), "history": history, "torchAccuracy": [round(a, 6) for a in acc],
        "torch": torch.__version__, "trainedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "/usr/bin/python3 training/train_camera.py" + (" --cifar10 DIR" if dataset == "cifar-10" else "")
                   + (f" --epochs {args.epochs}" if args.epochs != 10 else ""),
        "preprocess": {"scale": 1 / 255.0, "mean": [float(m) for m in mean_c], "std": [float(s) for s in std_c]},
    }
    with open(os.path.join(work, "training.json"), "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    if args.no_import:
        log("stopped before the import: files in", work)
        return

    # The console's own import, into a scratch data directory; then moved into place.
    data_dir = os.path.join(work, "data")
    fmt = lambda v: "/".join(f"{x:.6f}" for x in v)  # noqa: E731
    cmd = ["node", os.path.join(ROOT, "bin", "edgent.js"), "model", "import", onnx_path, "--id", model_id, "--data-dir", data_dir,
           "--preprocess", f"scale=1/255,mean={fmt(mean_c)},std={fmt(std_c)}", "--classes", os.path.join(work, "classes.txt"),
           "--images", images, "--labels", labels]
    log("$", " ".join(cmd))
    subprocess.run(cmd, check=True)
    src = os.path.join(data_dir, "models", model_id)
    if os.path.exists(out):
        shutil.rmtree(out)
    shutil.copytree(src, out)
    for name in ("samples-images-idx3-ubyte", "samples-labels-idx1-ubyte"):
        p = os.path.join(out, name)
        with open(p, "rb") as f:
            raw = f.read()
        with gzip.GzipFile(p, "wb", mtime=0) as f:  # same name: idx readers detect gzip by its magic bytes
            f.write(raw)
    shutil.copy(os.path.join(work, "training.json"), os.path.join(out, "training.json"))
    log("shipped", out)


if __name__ == "__main__":
    main()
