"""Keras 3's mixing and policy layers: MixUp, CutMix, RandAugment, AugMix, Pipeline and
MaxNumBoundingBoxes.

``MixUp`` and ``CutMix`` mix each image with another of the batch (a random permutation); given
Keras's dict input ``{"images": ..., "labels": ...}`` they mix the (one-hot) labels with the same
weights. ``RandAugment`` applies ``num_ops`` operations chosen at random from Keras's list;
``AugMix`` blends ``num_chains`` random chains of operations with Dirichlet weights. Beta and
Dirichlet draws come from NumPy seeded by the layer's torch generator, so ``seed`` makes them
repeatable.
"""

from __future__ import annotations

import random
from typing import Any

import torch

from bigmodel.errors import ConfigError, NotSupportedError
from bigmodel.keras.layers.augmentation import RandomRotation, RandomTranslation
from bigmodel.keras.layers.base import Layer
from bigmodel.keras.layers.color_augmentation import RandomBrightness, RandomContrast
from bigmodel.keras.layers.image_augment_base import BaseImageAugmentation, as_tensor, is_number
from bigmodel.keras.layers.image_augment_color import (
    RandomColorDegeneration,
    RandomPosterization,
    RandomSharpness,
    Solarization,
)
from bigmodel.keras.layers.image_augment_geometry import RandomShear
from bigmodel.keras.layers.image_augment_tone import AutoContrast, Equalization
from bigmodel.keras.layers.layer_registry import deserialize_layer, serialize_layer
from bigmodel.keras.layers.symbolic import Shape

__all__ = ["AugMix", "CutMix", "MaxNumBoundingBoxes", "MixUp", "Pipeline", "RandAugment"]


class _Mixing(BaseImageAugmentation):
    def _permutation(self, n: int, like: torch.Tensor) -> torch.Tensor:
        return torch.randperm(n, device=like.device, generator=self._generator(like))

    @staticmethod
    def _mix_labels(labels: torch.Tensor, transformation: Any) -> torch.Tensor:
        labels = labels if labels.is_floating_point() else labels.float()
        weight = transformation["mix_weight"].to(labels).reshape(-1, 1)
        other = labels[transformation["permutation_order"].to(labels.device).long()]
        return weight * labels + (1.0 - weight) * other


class MixUp(_Mixing):
    """``w * x + (1 - w) * x[perm]`` per image (and label), ``w ~ Beta(alpha, alpha)``."""

    def __init__(self, alpha: float = 0.2, data_format: str | None = None,
                 seed: int | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, seed=seed, **kwargs)
        if not is_number(alpha) or alpha <= 0:
            self._fail(f"`alpha` must be a positive number. Received: alpha={alpha!r}")
        self.alpha = alpha

    def get_random_transformation(self, data: Any, training: bool = True, seed: Any = None) -> Any:
        images, n = self._images_of(data), self._batch_size(data)
        permutation = self._permutation(n, images)
        weight = self._numpy_rng(images).beta(self.alpha, self.alpha, size=n)
        return {"mix_weight": torch.as_tensor(weight, dtype=torch.float32, device=images.device),
                "permutation_order": permutation}

    def _transform(self, images: torch.Tensor, transformation: Any) -> torch.Tensor:
        weight = transformation["mix_weight"].to(images).reshape(-1, 1, 1, 1)
        other = images[transformation["permutation_order"].to(images.device).long()]
        return weight * images + (1.0 - weight) * other

    def transform_labels(self, labels: torch.Tensor, transformation: Any = None,
                         training: bool = True) -> torch.Tensor:
        return self._mix_labels(labels, transformation) if training else labels

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "alpha": self.alpha, "seed": self.seed}


class CutMix(_Mixing):
    """Pastes a random box of another image of the batch into each image; the box covers
    ``1 - w`` of the image, ``w ~ Beta(a, a)`` with ``a`` drawn in ``factor``; labels are mixed by
    the pasted area. A single image is returned unchanged (there is nothing to mix with)."""

    def __init__(self, factor: Any = 1.0, seed: int | None = None,
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, seed=seed, **kwargs)
        self.factor = self._factor_pair(factor, "factor", (0, 1))

    def get_random_transformation(self, data: Any, training: bool = True, seed: Any = None) -> Any:
        images = self._images_of(data)
        self._batch_size(data)
        if not training or images.dim() == 3:
            return None
        n = images.shape[0]
        h_axis, w_axis = (-2, -1) if self.data_format == "channels_first" else (-3, -2)
        height, width = images.shape[h_axis], images.shape[w_axis]
        alpha = float(self._uniform((), self.factor[0], self.factor[1], images)) + 1e-6
        mix = torch.as_tensor(self._numpy_rng(images).beta(alpha, alpha, size=n),
                              dtype=torch.float32, device=images.device)
        ratio = torch.sqrt(1.0 - mix)

        def bounds(length: int) -> tuple[torch.Tensor, torch.Tensor]:
            crop = ratio * length
            start = self._uniform((n,), 0.0, 1.0, images) * (length - crop)
            return start, start + crop

        x0, x1 = bounds(width)
        y0, y1 = bounds(height)
        rows = torch.arange(height, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
        cols = torch.arange(width, dtype=torch.float32, device=images.device).view(1, 1, -1, 1)
        x0, x1, y0, y1 = (v.view(-1, 1, 1, 1) for v in (x0, x1, y0, y1))
        masks = (cols >= x0) & (cols < x1) & (rows >= y0) & (rows < y1)  # (B, H, W, 1)
        channels = images.shape[-3 if self.data_format == "channels_first" else -1]
        masks = masks.expand(-1, -1, -1, channels)  # Keras's layout: channels repeated
        if self.data_format == "channels_first":
            masks = masks.permute(0, 3, 1, 2)
        weight = 1.0 - (x1 - x0) * (y1 - y0) / (width * height)
        return {"permutation_order": self._permutation(n, images), "batch_masks": masks,
                "mix_weight": weight}

    def _transform(self, images: torch.Tensor, transformation: Any) -> torch.Tensor:
        if transformation is None:
            return images
        masks = transformation["batch_masks"].to(images.device)
        if self.data_format == "channels_first":
            masks = masks.permute(0, 2, 3, 1)  # (B, C, H, W) -> the channels-last batch's
        other = images[transformation["permutation_order"].to(images.device).long()]
        return torch.where(masks, other, images)

    def transform_labels(self, labels: torch.Tensor, transformation: Any = None,
                         training: bool = True) -> torch.Tensor:
        if not training or transformation is None:
            return labels
        return self._mix_labels(labels, transformation)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor, "seed": self.seed}


def _policy_layers(factor: tuple[float, float], value_range: Any,
                   interpolation: str, seed: int | None, colour: bool) -> dict[str, Layer]:
    """The operations of Keras's RandAugment / AugMix, built with Keras's arguments."""
    common = {"value_range": value_range, "seed": seed}
    ops: dict[str, Layer] = {
        "random_shear": RandomShear(x_factor=factor, y_factor=factor,
                                    interpolation=interpolation, seed=seed),
        "random_translation": RandomTranslation(factor, factor, interpolation=interpolation,
                                                seed=seed),
        "random_rotation": RandomRotation(factor, interpolation=interpolation, seed=seed),
        "random_posterization": RandomPosterization(max(1, int(8 * factor[1])), **common),
        "solarization": Solarization(addition_factor=factor, threshold_factor=factor, **common),
        "auto_contrast": AutoContrast(value_range=value_range),
        "equalization": Equalization(value_range=value_range),
    }
    if colour:
        ops.update({
            "random_brightness": RandomBrightness(factor, **common),
            "random_color_degeneration": RandomColorDegeneration(factor, **common),
            "random_contrast": RandomContrast(factor, **common),
            "random_sharpness": RandomSharpness(factor, **common),
        })
    return ops


class _Policy(BaseImageAugmentation):
    """Holds the operation layers (channels-last: the base hands them channels-last batches)."""

    def _setup(self, value_range: Any, factor: Any, interpolation: str, colour: bool) -> None:
        self._value_range(value_range)
        self.value_range = value_range
        self.factor = self._factor_pair(factor, "factor", (0, 1))
        self.interpolation = self._choice(interpolation, "interpolation", ("nearest", "bilinear"))
        self._ops = torch.nn.ModuleDict(_policy_layers(self.factor, value_range,
                                                       interpolation, self.seed, colour))

    def _run_op(self, name: str, images: torch.Tensor) -> torch.Tensor:
        return self._ops[name](images, training=True)


class RandAugment(_Policy):
    """Applies ``num_ops`` operations, each chosen uniformly (for the whole batch) from shear,
    translation, rotation, brightness, colour degeneration, contrast, sharpness, posterization,
    solarization, auto-contrast and equalization, with magnitudes in ``factor``."""

    _ORDER = ("random_shear", "random_translation", "random_rotation", "random_brightness",
              "random_color_degeneration", "random_contrast", "random_sharpness",
              "random_posterization", "solarization", "auto_contrast", "equalization")

    def __init__(self, value_range: Any = (0, 255), num_ops: int = 2, factor: Any = 0.5,
                 interpolation: str = "bilinear", seed: int | None = None,
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, seed=seed, **kwargs)
        if isinstance(num_ops, bool) or not isinstance(num_ops, int) or num_ops < 0:
            self._fail(f"`num_ops` must be a non-negative integer. Received: num_ops={num_ops!r}")
        self.num_ops = num_ops
        self._setup(value_range, factor, interpolation, colour=True)

    def get_random_transformation(self, data: Any, training: bool = True, seed: Any = None) -> Any:
        if not training:
            return None
        images = self._images_of(data)
        return {"layer_idxes": torch.randint(0, len(self._ORDER), (self.num_ops,),
                                             device=images.device,
                                             generator=self._generator(images))}

    def _transform(self, images: torch.Tensor, transformation: Any) -> torch.Tensor:
        for index in transformation["layer_idxes"].tolist():
            images = self._run_op(self._ORDER[int(index)], images)
        return images

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "value_range": self.value_range, "num_ops": self.num_ops,
                "factor": self.factor, "interpolation": self.interpolation, "seed": self.seed}


class AugMix(_Policy):
    """AugMix (Hendrycks et al.): ``num_chains`` chains of up to ``chain_depth`` random
    operations, blended with Dirichlet(``alpha``) weights, then mixed with the original by a
    Beta(``alpha``, ``alpha``) weight; ``all_ops=False`` leaves out the colour operations."""

    _GEOMETRY = ("random_shear", "random_translation", "random_rotation",
                 "random_posterization", "solarization", "auto_contrast", "equalization")
    _COLOUR = ("random_brightness", "random_color_degeneration", "random_contrast",
               "random_sharpness")

    def __init__(self, value_range: Any = (0, 255), num_chains: int = 3, chain_depth: int = 3,
                 factor: Any = 0.3, alpha: float = 1.0, all_ops: bool = True,
                 interpolation: str = "bilinear", seed: int | None = None,
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(data_format=data_format, seed=seed, **kwargs)
        for arg, value in (("num_chains", num_chains), ("chain_depth", chain_depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                self._fail(f"`{arg}` must be a positive integer. Received: {arg}={value!r}")
        if not is_number(alpha) or alpha <= 0:
            self._fail(f"`alpha` must be a positive number. Received: alpha={alpha!r}")
        self.num_chains, self.chain_depth, self.alpha = num_chains, chain_depth, alpha
        self.all_ops = bool(all_ops)
        self._setup(value_range, factor, interpolation, colour=self.all_ops)
        self._names = self._GEOMETRY + (self._COLOUR if self.all_ops else ())
        self._python_rng = random.Random(seed)

    def get_random_transformation(self, data: Any, training: bool = True, seed: Any = None) -> Any:
        if not training:
            return None
        rng = self._numpy_rng(self._images_of(data))
        choices = [*self._names, None]
        chains = [[name for name in (self._python_rng.choice(choices)
                                     for _ in range(self.chain_depth)) if name is not None]
                  for _ in range(self.num_chains)]
        return {"chain_mixing_weights": torch.as_tensor(
                    rng.dirichlet([self.alpha] * self.num_chains), dtype=torch.float32),
                "weight_sample": torch.as_tensor(rng.beta(self.alpha, self.alpha),
                                                 dtype=torch.float32),
                "chain_transforms": chains}

    def _transform(self, images: torch.Tensor, transformation: Any) -> torch.Tensor:
        weights = transformation["chain_mixing_weights"].to(images)
        mixed = torch.zeros_like(images)
        for index, chain in enumerate(transformation["chain_transforms"]):
            chained = images
            for name in chain:
                chained = self._run_op(name, chained)
            mixed = mixed + chained * weights[index]
        keep = transformation["weight_sample"].to(images)
        low, high = sorted(self.value_range)
        return (keep * images + (1 - keep) * mixed).clip(low, high)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "value_range": self.value_range,
                "num_chains": self.num_chains, "chain_depth": self.chain_depth,
                "factor": self.factor, "alpha": self.alpha, "all_ops": self.all_ops,
                "interpolation": self.interpolation, "seed": self.seed}


class MaxNumBoundingBoxes(BaseImageAugmentation):
    """Pads (with ``fill_value``) or truncates dense bounding boxes to ``max_number`` per image:
    ``{"images", "bounding_boxes": {"boxes": (B, N, 4), "labels": (B, N)}}``; images pass."""

    _EXTRA_KEYS = ("bounding_boxes",)

    def __init__(self, max_number: int, fill_value: int = -1, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(max_number, bool) or not is_number(max_number) or int(max_number) < 1:
            self._fail(f"`max_number` must be a positive integer. Received: "
                       f"max_number={max_number!r}")
        self.max_number, self.fill_value = int(max_number), int(fill_value)

    def transform_images(self, images: torch.Tensor, transformation: Any = None,
                         training: bool = True) -> torch.Tensor:
        return images

    def transform_bounding_boxes(self, bounding_boxes: dict[str, Any], transformation: Any = None,
                                 training: bool = True) -> dict[str, Any]:
        if not isinstance(bounding_boxes, dict) or set(bounding_boxes) - {"boxes", "labels"} \
                or "boxes" not in bounding_boxes or "labels" not in bounding_boxes:
            raise NotSupportedError(
                f"Layer '{self.name}' (MaxNumBoundingBoxes): `bounding_boxes` must be a dict with "
                f"'boxes' (batch, n, 4) and 'labels' (batch, n); received {bounding_boxes!r:.200}")
        boxes, labels = as_tensor(bounding_boxes["boxes"]), as_tensor(bounding_boxes["labels"])
        keep = min(boxes.shape[1], self.max_number)
        pad = self.max_number - keep
        boxes = torch.cat([boxes[:, :keep], boxes.new_full((boxes.shape[0], pad, 4),
                                                           self.fill_value)], dim=1)
        labels = torch.cat([labels[:, :keep], labels.new_full((labels.shape[0], pad),
                                                              self.fill_value)], dim=1)
        return {**bounding_boxes, "boxes": boxes, "labels": labels}

    def _transform_extra(self, data: dict[str, Any], transformation: Any,
                         training: bool) -> dict[str, Any]:
        if "bounding_boxes" in data:
            boxes = data["bounding_boxes"]
            if data["images"].dim() == 3 and isinstance(boxes, dict):  # one image: add a batch
                boxes = {k: as_tensor(v)[None] for k, v in boxes.items()}
                out = self.transform_bounding_boxes(boxes)
                data["bounding_boxes"] = {k: v[0] for k, v in out.items()}
            else:
                data["bounding_boxes"] = self.transform_bounding_boxes(boxes)
        return data

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "max_number": self.max_number}


class Pipeline(Layer):
    """Applies ``layers`` in order (``training`` passed on), as ``keras.layers.Pipeline``."""

    def __init__(self, layers: Any, name: str | None = None, **kwargs: Any):
        super().__init__(name=name, **kwargs)
        if not isinstance(layers, (list, tuple)) or not all(isinstance(layer, Layer)
                                                            for layer in layers):
            raise ConfigError(f"Pipeline: `layers` must be a list of layers. Received: "
                              f"layers={layers!r:.200}")
        self._pipeline_layers = list(layers)

    @property
    def layers(self) -> list[Layer]:
        return list(self._pipeline_layers)

    def build(self, input_shape: Any) -> None:
        super().build(input_shape)

    def call(self, inputs: Any, training: bool = True) -> Any:
        for layer in self._pipeline_layers:
            inputs = layer(inputs, training=training)
        return inputs

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shape = tuple(input_shape)
        for layer in self._pipeline_layers:
            shape = tuple(layer.compute_output_shape(shape))
        return shape

    def get_config(self) -> dict[str, Any]:
        return {"layers": [serialize_layer(layer) for layer in self._pipeline_layers],
                "name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Pipeline:
        layers = config.get("layers")
        if not isinstance(layers, (list, tuple)):
            raise ConfigError(f"`Pipeline` config must contain a `layers` key mapping to a list "
                              f"of serialized layers. Received config with layers={layers!r}.")
        return cls(**{**config, "layers": [deserialize_layer(spec) for spec in layers]})
