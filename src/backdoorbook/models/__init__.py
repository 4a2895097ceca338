"""Model builders and checkpoint loaders."""

from .cifar_resnet import (
    DEPTHS as CIFAR_RESNET_DEPTHS,
)
from .cifar_resnet import (
    REPORTED_ACCURACY as CIFAR_RESNET_REPORTED_ACCURACY,
)
from .cifar_resnet import (
    CifarResNet,
    cifar_resnet,
    load_cifar_resnet,
    load_cifar_resnet_checkpoint,
)
from .wrappers import IMAGENET_MEAN, IMAGENET_STD, Normalised

__all__ = [
    "CIFAR_RESNET_DEPTHS",
    "CIFAR_RESNET_REPORTED_ACCURACY",
    "CifarResNet",
    "cifar_resnet",
    "load_cifar_resnet",
    "load_cifar_resnet_checkpoint",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Normalised",
]
