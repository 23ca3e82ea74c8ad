"""The Larq Zoo models (larq-zoo 2.4.0), registered under edgebnn names.

Built with ``weights=None``: pretrained weights download from the internet at run time, which
is not possible everywhere edgebnn runs; train them, or use them for latency studies, where
weights do not matter. Published ImageNet top-1 figures are Larq Zoo's.
"""

from __future__ import annotations

from edgebnn.errors import UsageError
from edgebnn.models.lazy_imports import lazy_module
from edgebnn.registry import register_model

lqz = lazy_module("larq_zoo")

# Larq Zoo expects inputs normalized with ImageNet's mean and std (lqz.preprocess_input).
IMAGENET_NORMALIZATION = {"mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]}

# CLI name -> (larq_zoo class as module.name, aliases, paper, published ImageNet top-1, notes)
ZOO = {
    "quicknet-small": ("sota.QuickNetSmall", ("quicknetsmall",), "Bannink et al., Larq Compute Engine, MLSys 2021", 59.4, ""),
    "quicknet": ("sota.QuickNet", (), "Bannink et al., Larq Compute Engine, MLSys 2021", 63.3, ""),
    "quicknet-large": ("sota.QuickNetLarge", ("quicknetlarge",), "Bannink et al., Larq Compute Engine, MLSys 2021", 66.9, ""),
    "birealnet": ("literature.BiRealNet", ("bireal-net", "birealnet18"), "Liu et al., Bi-Real Net, ECCV 2018", 57.5, ""),
    "binary-resnet-e18": ("literature.BinaryResNetE18", ("binaryresnete18",), "Bethge et al., BinaryDenseNet, 2019", 58.3, ""),
    "binary-densenet-28": ("literature.BinaryDenseNet28", ("binarydensenet28",), "Bethge et al., BinaryDenseNet, 2019", 60.9, ""),
    "binary-densenet-37": ("literature.BinaryDenseNet37", ("binarydensenet37",), "Bethge et al., BinaryDenseNet, 2019", 62.9, ""),
    "binary-densenet-45": ("literature.BinaryDenseNet45", ("binarydensenet45",), "Bethge et al., BinaryDenseNet, 2019", 64.6, ""),
    "real-to-binary": ("literature.RealToBinaryNet", ("realtobinarynet", "real-to-binary-net"), "Martinez et al., Real-to-Binary, ICLR 2020", 65.0, ""),
    "meliusnet-22": ("literature.MeliusNet22", ("meliusnet22",), "Bethge et al., MeliusNet, 2020", 62.4, ""),
    "xnornet": ("literature.XNORNet", ("xnor-net",), "Rastegari et al., XNOR-Net, ECCV 2016", 45.0, ""),
    "binary-alexnet": ("literature.BinaryAlexNet", ("binaryalexnet",), "Courbariaux et al., BNN, NeurIPS 2016", 36.3, ""),
    "dorefanet": (
        "literature.DoReFaNet",
        ("dorefa-net",),
        "Zhou et al., DoReFa-Net, 2016",
        53.4,
        "documented exception: its k-bit quantizers have no LCE binary kernel, so no LceBconv2d",
    ),
}

# AlexNet-style valid convolutions and pooling need larger inputs than 32x32.
MIN_INPUT_SIZE = {"binary-alexnet": 64, "dorefanet": 64, "xnornet": 224}


def _entrypoint(zoo_class: str):
    def build(*, input_shape, num_classes, width: float = 1.0):
        if width != 1.0:
            raise UsageError("Larq Zoo models have a fixed width: drop the width option")
        group, name = zoo_class.split(".")
        return getattr(getattr(lqz, group), name)(
            input_shape=tuple(input_shape), num_classes=num_classes, weights=None, include_top=True
        )

    build.__doc__ = f"{zoo_class.split('.')[1]} from Larq Zoo, random weights."
    return build


for _name, (_cls, _aliases, _paper, _top1, _notes) in ZOO.items():
    register_model(
        _name,
        family="larq-zoo",
        paper=_paper,
        aliases=_aliases,
        recipe="larq-zoo",
        published={"imagenet_top1": _top1},
        preprocessing=IMAGENET_NORMALIZATION,
        notes=_notes,
        min_input_size=MIN_INPUT_SIZE.get(_name, 32),
    )(_entrypoint(_cls))
