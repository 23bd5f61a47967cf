"""Backbones from torchvision by name, split into a ``stem`` and a ``last`` stage.

``build_backbone(name, weights)`` accepts any torchvision classification model whose family is registered
here (ResNet/ResNeXt/Wide-ResNet, RegNet, and the ``features``-style MobileNet, EfficientNet, ConvNeXt,
MNASNet and VGG families) with initial weights ``"none"``, ``"imagenet"`` (torchvision's own ``weights=``
mechanism, IMAGENET1K_V1; ``imagenet:NAME`` for another member; offline it needs the file in
``$TORCH_HOME/hub/checkpoints``) or a local checkpoint path.

The split gives the three trainable scopes one code path (``split_for_scope``): ``head`` trains only the
head on pooled features, ``last`` trains the last stage + head on the stem's activations, ``all`` trains
everything on images.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torchvision
from torch import nn

from olvido.checkpoint import safe_load
from olvido.errors import OlvidoError

SCOPES = ("head", "last", "all")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Splitter = Callable[[nn.Module], tuple[nn.Module, nn.Module]]
_FAMILIES: dict[str, Splitter] = {}


def register_family(*prefixes: str) -> Callable[[Splitter], Splitter]:
    """Register how to split models whose torchvision name starts with one of ``prefixes``."""

    def decorator(splitter: Splitter) -> Splitter:
        for prefix in prefixes:
            _FAMILIES[prefix] = splitter
        return splitter

    return decorator


@register_family("resnet", "resnext", "wide_resnet")
def _split_resnet(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool, model.layer1, model.layer2, model.layer3)
    return stem, model.layer4


@register_family("regnet")
def _split_regnet(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    blocks = list(model.trunk_output.children())
    return nn.Sequential(model.stem, *blocks[:-1]), blocks[-1]


# MobileNetV2's last stage: the stride-32 blocks (160 and 320 channels) and the final 1x1 convolution.
_LAST_STAGE_START = {"mobilenet_v2": 14}


@register_family("mobilenet", "efficientnet", "convnext", "vgg")
def _split_features(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    features = model.features
    start = _LAST_STAGE_START.get(getattr(model, "_olvido_name", ""), len(features) - 2)
    return features[:start], features[start:]


@register_family("mnasnet")
def _split_mnasnet(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    return model.layers[:-3], model.layers[-3:]


class ImageNormalize(nn.Module):
    """ImageNet mean/std normalisation of [0, 1] NCHW images, as a layer so it travels with the model."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std


class GlobalPool(nn.Sequential):
    def __init__(self) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Flatten())


@dataclass
class Backbone:
    """A torchvision network cut in two; ``network`` is the torchvision model the parts belong to."""

    name: str
    network: nn.Module
    stem: nn.Module
    last: nn.Module
    feature_dim: int

    def backbone_state(self) -> dict[str, torch.Tensor]:
        """The weights of stem + last, under the torchvision model's own key names."""
        keep = {
            id(p)
            for p in list(self.stem.state_dict(keep_vars=True).values())
            + list(self.last.state_dict(keep_vars=True).values())
        }
        return {k: v.detach().clone() for k, v in self.network.state_dict(keep_vars=True).items() if id(v) in keep}


def _family(name: str) -> Splitter:
    for prefix, splitter in sorted(_FAMILIES.items(), key=lambda item: -len(item[0])):
        if name.startswith(prefix):
            return splitter
    raise OlvidoError(
        f"backbone {name!r}: no registered family; expected a torchvision model starting with {sorted(_FAMILIES)}"
    )


def build_backbone(name: str, weights: str | os.PathLike = "imagenet") -> Backbone:
    """A torchvision backbone by name with initial weights ``none``, ``imagenet`` or a checkpoint path."""
    splitter = _family(name)
    if name not in torchvision.models.list_models(module=torchvision.models):
        raise OlvidoError(f"backbone {name!r}: not a torchvision classification model")
    if str(weights).startswith("imagenet"):
        # "imagenet" = torchvision's IMAGENET1K_V1 weights (the classic ones, cached offline here for
        # mobilenet_v2); "imagenet:IMAGENET1K_V2" names another enum member.
        enum = torchvision.models.get_model_weights(name)
        _, _, member = str(weights).partition(":")
        member = member or ("IMAGENET1K_V1" if "IMAGENET1K_V1" in enum.__members__ else "DEFAULT")
        try:
            network = torchvision.models.get_model(name, weights=enum[member] if member != "DEFAULT" else "DEFAULT")
        except Exception as error:  # offline download failures surface as several exception types
            home = os.environ.get("TORCH_HOME", "~/.cache/torch")
            raise OlvidoError(
                f"backbone {name!r}: ImageNet weights not available offline ({type(error).__name__}); expected "
                f"torchvision's file in {home}/hub/checkpoints (set TORCH_HOME=../shared/torch)"
            ) from None
    elif str(weights) == "none":
        network = torchvision.models.get_model(name, weights=None)
    else:
        network = torchvision.models.get_model(name, weights=None)
        load_backbone_weights(network, Path(weights), name)
    network._olvido_name = name
    stem, last = splitter(network)
    network.eval()
    with torch.no_grad():
        feature_dim = int(last(stem(torch.zeros(1, 3, 64, 64))).shape[1])
    return Backbone(name=name, network=network, stem=stem, last=last, feature_dim=feature_dim)


def load_backbone_weights(network: nn.Module, path: Path, name: str) -> None:
    """Load a local checkpoint (a plain state_dict, or an olvido checkpoint) with ``weights_only=True``."""
    stored = safe_load(path, expected="'none', 'imagenet' or a state_dict checkpoint path")
    state = stored.get("state_dict", stored) if isinstance(stored, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise OlvidoError(f"{path}: expected a state_dict of tensors (or a dict with 'state_dict')")
    try:
        result = network.load_state_dict(state, strict=False)
    except RuntimeError as error:  # tensor shapes that do not match the architecture
        raise OlvidoError(f"{path}: does not fit backbone {name!r} ({str(error).splitlines()[-1].strip()})") from None
    head_names = ("fc.", "classifier.")
    missing = [k for k in result.missing_keys if not k.startswith(head_names)]
    if missing or result.unexpected_keys:
        raise OlvidoError(
            f"{path}: does not fit backbone {name!r} (missing {missing[:3]}, unexpected {result.unexpected_keys[:3]})"
        )


def split_for_scope(backbone: Backbone, scope: str) -> tuple[nn.Module, nn.Module]:
    """``(frozen, trainable)`` parts of the backbone for a scope; ``trainable(frozen(images))`` = features.

    Images are float [0, 1] NCHW tensors. The frozen part is run once and cached; the trainable part is
    what training and unlearning update (the head comes after it).
    """
    if scope == "head":
        return nn.Sequential(ImageNormalize(), backbone.stem, backbone.last, GlobalPool()), nn.Identity()
    if scope == "last":
        return nn.Sequential(ImageNormalize(), backbone.stem), nn.Sequential(backbone.last, GlobalPool())
    if scope == "all":
        return nn.Identity(), nn.Sequential(ImageNormalize(), backbone.stem, backbone.last, GlobalPool())
    raise OlvidoError(f"scope {scope!r}: expected one of {', '.join(SCOPES)}")
