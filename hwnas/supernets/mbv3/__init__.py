"""The Once-for-All MobileNetV3 supernet (built-in): network, supernet and spaces, Fashion-MNIST."""

from hwnas.supernets.mbv3.fmnist import fashion_mnist_task, load_fashion_mnist
from hwnas.supernets.mbv3.network import MBV3Arch, MBV3Network, SharedMBV3, make_divisible
from hwnas.supernets.mbv3.supernet import (
    LAYOUTS,
    SPACES,
    Layout,
    OFAMobileNetV3,
    make_mbv3_supernet,
    make_supernets,
)

__all__ = ["LAYOUTS", "SPACES", "Layout", "MBV3Arch", "MBV3Network", "OFAMobileNetV3", "SharedMBV3",
           "fashion_mnist_task", "load_fashion_mnist", "make_divisible", "make_mbv3_supernet", "make_supernets"]
