"""BranchyNet-style AlexNet with five exits (Teerapittayanon et al., ICPR 2016; Edgent, MECOMM 2018).

The trunk uses every layer type of the Edgent regression table: conv, relu, max-pool, LRN,
dropout and fc. Four side branches are deliberately small (pool + fc) so that early exits are
cheaper *and* less accurate: right-sizing has something to trade.

Every layer is a named module so the exporter can give each one's output tensor a stable name
(the layer id); the manifest names layers by those boundary tensors.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class _LrnFn(torch.autograd.Function):
    """LRN exported as the single ONNX `LRN` op (torch would export a chain of primitives).
    PyTorch's and ONNX's definitions agree: y = x / (k + alpha/n * sum(x^2 over n channels))^beta."""

    @staticmethod
    def forward(ctx, x, size, alpha, beta, k):
        return F.local_response_norm(x, size, alpha, beta, k)

    @staticmethod
    def symbolic(g, x, size, alpha, beta, k):
        return g.op("LRN", x, size_i=size, alpha_f=alpha, beta_f=beta, bias_f=k)


class LRN(nn.Module):
    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=2.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        if self.training:
            return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)
        return _LrnFn.apply(x, self.size, self.alpha, self.beta, self.k)


class _DropoutFn(torch.autograd.Function):
    """Inference-mode dropout, exported as an ONNX `Dropout` node (identity at inference) so the
    layer keeps its own boundary tensors in the graph; torch's exporter would drop it entirely."""

    @staticmethod
    def forward(ctx, x, p):
        return x.clone()

    @staticmethod
    def symbolic(g, x, p):
        ratio = g.op("Constant", value_t=torch.tensor(p, dtype=torch.float32))
        return g.op("Dropout", x, ratio)


class Dropout(nn.Module):
    def __init__(self, p=0.5):
        super().__init__()
        self.p = p

    def forward(self, x):
        if self.training:
            return F.dropout(x, self.p, True)
        return _DropoutFn.apply(x, self.p)


def trunk_layers(in_ch):
    """(id, type, module) in order. Sizes chosen so the device's share of the work matters (tens of
    MFLOPs per image) while five epochs still train on two CPU cores in well under an hour."""
    return [
        ("conv1", "conv", nn.Conv2d(in_ch, 32, 5, 1, 2)),
        ("relu1", "relu", nn.ReLU()),
        ("pool1", "pool", nn.MaxPool2d(3, 2, 1)),
        ("lrn1", "lrn", LRN()),
        ("conv2", "conv", nn.Conv2d(32, 96, 5, 1, 2)),
        ("relu2", "relu", nn.ReLU()),
        ("pool2", "pool", nn.MaxPool2d(3, 2, 1)),
        ("lrn2", "lrn", LRN()),
        ("conv3", "conv", nn.Conv2d(96, 192, 3, 1, 1)),
        ("relu3", "relu", nn.ReLU()),
        ("conv4", "conv", nn.Conv2d(192, 192, 3, 1, 1)),
        ("relu4", "relu", nn.ReLU()),
        ("conv5", "conv", nn.Conv2d(192, 128, 3, 1, 1)),
        ("relu5", "relu", nn.ReLU()),
        ("pool5", "pool", nn.MaxPool2d(3, 2, 0)),
        ("flatten5", "flatten", nn.Flatten()),
        ("fc6", "fc", None),  # in_features depends on the input size: filled in by the model
        ("relu6", "relu", nn.ReLU()),
        ("dropout6", "dropout", Dropout(0.5)),
        ("fc7", "fc", nn.Linear(1024, 1024)),
        ("relu7", "relu", nn.ReLU()),
        ("dropout7", "dropout", Dropout(0.5)),
        ("fc8", "fc", nn.Linear(1024, 10)),
        ("softmax", "softmax", nn.Softmax(dim=1)),
    ]


# Where each side branch leaves the trunk (after that trunk layer), and its pooling.
BRANCHES = [
    # exit, after, pool (kernel, stride, pad)
    (1, "lrn1", (4, 4, 0)),
    (2, "lrn2", (3, 2, 1)),
    (3, "relu3", (3, 2, 1)),
    (4, "relu4", (3, 2, 1)),
]


class BranchyAlexNet(nn.Module):
    def __init__(self, in_ch=1, size=28, classes=10):
        super().__init__()
        self.trunk_spec = trunk_layers(in_ch)
        self.layers = nn.ModuleDict()
        x = torch.zeros(1, in_ch, size, size)
        self.shapes = {}
        for lid, ltype, mod in self.trunk_spec:
            if mod is None and lid == "fc6":
                mod = nn.Linear(x.shape[1], 1024)
            self.layers[lid] = mod
            with torch.no_grad():
                mod.eval()
                x = mod(x)
            self.shapes[lid] = tuple(x.shape)
        self.branch_spec = []
        for exit_no, after, (k, s, p) in BRANCHES:
            c, h, w = self.shapes[after][1:]
            ho = (h + 2 * p - k) // s + 1
            wo = (w + 2 * p - k) // s + 1
            pre = f"b{exit_no}_"
            spec = [
                (pre + "pool", "pool", nn.MaxPool2d(k, s, p)),
                (pre + "flatten", "flatten", nn.Flatten()),
                (pre + "fc", "fc", nn.Linear(c * ho * wo, classes)),
                (pre + "softmax", "softmax", nn.Softmax(dim=1)),
            ]
            for lid, _, mod in spec:
                self.layers[lid] = mod
            self.branch_spec.append((exit_no, after, spec))
        self.train()

    def exit_paths(self):
        """exit number -> ordered [(layer id, type)] of its path from the input."""
        trunk = [(lid, t) for lid, t, _ in self.trunk_spec]
        paths = {}
        for exit_no, after, spec in self.branch_spec:
            cut = [lid for lid, _ in trunk].index(after) + 1
            paths[exit_no] = trunk[:cut] + [(lid, t) for lid, t, _ in spec]
        paths[len(self.branch_spec) + 1] = trunk
        return paths

    def forward(self, x, logits=True):
        """Returns one output per exit, earliest first. With logits=True the softmax layers are
        skipped (training uses cross-entropy on logits); export uses logits=False."""
        outs = {}
        branch_at = {after: (exit_no, spec) for exit_no, after, spec in self.branch_spec}
        for lid, ltype, _ in self.trunk_spec:
            if logits and ltype == "softmax":
                continue
            x = self.layers[lid](x)
            if lid in branch_at:
                exit_no, spec = branch_at[lid]
                y = x
                for blid, bt, _ in spec:
                    if logits and bt == "softmax":
                        continue
                    y = self.layers[blid](y)
                outs[exit_no] = y
        outs[len(self.branch_spec) + 1] = x
        return [outs[k] for k in sorted(outs)]
