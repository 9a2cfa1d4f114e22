"""PyTorch baseline for nntrain's benchmarks: the default preset's model
(784-256-128-10, ReLU, softmax cross-entropy, Adam 1e-3, batch 128), or with
--wide the wide preset's (784-2048-2048-10), trained eagerly on
Fashion-MNIST, single process or DistributedDataParallel (gloo).

Prints one JSON line: samples/s over the measured epochs (the first epoch is
a warm-up and is not counted)."""
import argparse, gzip, json, os, struct, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = os.environ.get("NNTRAIN_FASHION_DIR", "/usr/share/datasets/fashion-mnist")


def idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, count = struct.unpack(">II", raw[:8])
    if magic == 0x803:
        rows, cols = struct.unpack(">II", raw[8:16])
        return np.frombuffer(raw, np.uint8, offset=16).reshape(count, rows * cols).astype(np.float32)
    return np.frombuffer(raw, np.uint8, offset=8).astype(np.int64)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128, help="global batch")
    p.add_argument("--ddp", action="store_true", help="run under torchrun-style env (gloo)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--wide", action="store_true", help="the wide preset's model, 784-2048-2048-10")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(7)
    rank, world = 0, 1
    if a.ddp:
        import torch.distributed as dist
        dist.init_process_group("gloo")
        rank, world = dist.get_rank(), dist.get_world_size()

    x = idx(f"{DATA}/train-images-idx3-ubyte.gz")
    y = idx(f"{DATA}/train-labels-idx1-ubyte.gz")
    x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1)
    device = torch.device(a.device)
    x, y = torch.from_numpy(x.astype(np.float32)).to(device), torch.from_numpy(y).to(device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # nntrain's default

    hidden = (2048, 2048) if a.wide else (256, 128)
    model = nn.Sequential(nn.Linear(784, hidden[0]), nn.ReLU(), nn.Linear(hidden[0], hidden[1]), nn.ReLU(),
                          nn.Linear(hidden[1], 10)).to(device)
    if a.ddp:
        model = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    local = a.batch_size // world
    n = (len(x) // a.batch_size) * a.batch_size
    measured_samples, measured_seconds = 0, 0.0
    for epoch in range(a.epochs):
        g = torch.Generator().manual_seed(epoch)
        order = torch.randperm(len(x), generator=g)[:n].to(device)
        start = time.perf_counter()
        for s in range(0, n, a.batch_size):
            batch = order[s + rank * local: s + (rank + 1) * local]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x[batch]), y[batch])
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        if epoch > 0:
            measured_samples += n
            measured_seconds += seconds
    if rank == 0:
        print(json.dumps({"framework": f"pytorch {torch.__version__}", "device": a.device, "ranks": world, "threads": a.threads,
                          "batch": a.batch_size, "samples_per_second": measured_samples / measured_seconds,
                          "final_loss": loss.item()}))
    if a.ddp:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
