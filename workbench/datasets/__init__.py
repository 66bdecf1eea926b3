"""Built-in data set providers (an ordinary plugin): mnist, mnist-sample, fashion-mnist."""

from __future__ import annotations

from pathlib import Path

from workbench import hookimpl
from workbench.data import (DataError, DataRequest, RawData, find_idx_files, load_idx_folder,
                            torchvision_download, verify_checksums)
from workbench.types import DatasetSpec

SAMPLE_DIR = Path(__file__).parent / "mnist_sample"
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
MIRROR_HOST = "ossci-datasets.s3.amazonaws.com"


def load_sample(request: DataRequest) -> RawData:
    verify_checksums(SAMPLE_DIR, SAMPLE_DIR / "SHA256SUMS")
    return load_idx_folder("mnist-sample", find_idx_files(SAMPLE_DIR))


def _torchvision_data(name: str, cls_name: str, request: DataRequest,
                      extra_dirs: tuple[Path, ...] = (),
                      classes: tuple[str, ...] | None = None) -> RawData:
    raw_dir = request.data_dir / cls_name / "raw"
    for folder in (*extra_dirs, raw_dir):
        files = find_idx_files(folder)
        if files:
            return load_idx_folder(name, files, classes)
    if request.allow_download:
        try:
            torchvision_download(cls_name, request.data_dir, MIRROR_HOST)
        except DataError as exc:
            raise DataError(f"{name}: not found in {raw_dir} and {exc}. Remedies: run once "
                            f"where there is internet (files are cached in {request.data_dir}),"
                            f" copy the four IDX files into {raw_dir}, or set --data-dir / "
                            f"MNIST_WORKBENCH_DATA to a folder holding them") from None
        files = find_idx_files(raw_dir)
        if files:
            return load_idx_folder(name, files, classes)
    raise DataError(f"{name}: not found in {raw_dir} (downloads disabled)")


def load_mnist(request: DataRequest) -> RawData:
    return _torchvision_data("mnist", "MNIST", request)


def load_fashion(request: DataRequest) -> RawData:
    return _torchvision_data("fashion-mnist", "FashionMNIST", request, (DEBIAN_FASHION,),
                             FASHION_CLASSES)


@hookimpl
def register_datasets(register):
    register(DatasetSpec(
        name="mnist", load=load_mnist, fallback="mnist-sample",
        description="MNIST 60k/10k via torchvision, cached; falls back loudly to mnist-sample"))
    register(DatasetSpec(
        name="mnist-sample", load=load_sample,
        description="10,000 real MNIST digits shipped with the package (8k train, 2k test; "
                    "CC BY-SA 3.0, LeCun/Cortes/Burges)"))
    register(DatasetSpec(
        name="fashion-mnist", load=load_fashion,
        description="Fashion-MNIST 60k/10k: Debian's dataset-fashion-mnist or torchvision"))
