"""The seed's usual training loop, as its notebook trains: a torchvision-style Dataset (PIL
image + ToTensor + Normalize per sample) through a DataLoader. make bench times it against the
workbench (benchmarks.grid_benchmark, sections 1-2)."""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from workbench import data


class SeedStyleDataset(torch.utils.data.Dataset):
    """What torchvision.datasets.MNIST/FashionMNIST do per item: uint8 array -> PIL image
    -> transform (ToTensor + Normalize)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image
        return self.transform(Image.fromarray(self.images[i], mode="L")), int(self.labels[i])


def seed_loaders(raw, seed: int, batch_size: int):
    from torchvision import transforms

    n = len(raw.train_labels)  # the workbench's split: same validation images
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    val_idx, train_idx = perm[:data.val_size(n)], perm[data.val_size(n):]
    # mean/std of the training pixels from their histogram (no float64 copy of the images)
    counts = sum(np.bincount(raw.train_images[train_idx[i:i + 2000]].ravel(), minlength=256)
                 for i in range(0, len(train_idx), 2000)).astype(np.float64)
    values = np.arange(256) / 255.0
    mean = float((counts * values).sum() / counts.sum())
    std = float(np.sqrt((counts * (values - mean) ** 2).sum() / (counts.sum() - 1)))
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))])
    train = SeedStyleDataset(raw.train_images[train_idx], raw.train_labels[train_idx], tf)
    val = SeedStyleDataset(raw.train_images[val_idx], raw.train_labels[val_idx], tf)
    test = SeedStyleDataset(raw.test_images, raw.test_labels, tf)
    loader = torch.utils.data.DataLoader
    return (loader(train, batch_size=batch_size, shuffle=True),
            loader(val, batch_size=batch_size), loader(test, batch_size=batch_size))


def seed_loop(raw, hidden: int, batch_size: int, epochs: int, seed: int = 11,
              fraction: float = 1.0, test: bool = False) -> tuple[float, float | None]:
    """The notebook's loop: train + validate per epoch. Returns (seconds per epoch, test
    accuracy or None). ``fraction`` < 1 times that share of each epoch and scales up."""
    torch.manual_seed(seed)
    train, val, test_loader = seed_loaders(raw, seed, batch_size)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    limit = max(1, int(len(train) * fraction))
    vlimit = max(1, int(len(val) * fraction))
    started = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for b, (x, y) in enumerate(train):
            if b >= limit:
                break
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for b, (x, y) in enumerate(val):
                if b >= vlimit:
                    break
                correct += int((model(x).argmax(1) == y).sum())
    per_epoch = (time.perf_counter() - started) / epochs / fraction
    acc = None
    if test:
        with torch.no_grad():
            hits = sum(int((model(x).argmax(1) == y).sum()) for x, y in test_loader)
        acc = hits / len(test_loader.dataset)
    return per_epoch, acc


