"""The metric suites: which network, layer, input size and preprocessing, per protocol.

One place for these facts. Sources: ``seed_code.md`` §6 (the paper's
``img2feat_decoded.py`` and ``identification.py``) and ``peers.md`` §1.2-1.4
(MindEye2 ``final_evaluations.ipynb``, Brain-Diffuser
``eval_extract_features.py`` and ``evaluate_reconstruction.py``).

What we reproduce exactly: layers, input sizes, resize library and
interpolation (PIL for the paper and Brain-Diffuser, torch tensors without
antialiasing for MindEye2's pinned torchvision 0.16), normalisation, the
identification orientation, ties as losses, SSIM's settings and PixCorr.

Where the numbers can still differ from a peer's table:

* MindEye2 starts from a 224-px float16 copy of the ground truth
  (``all_images.pt``); we start from the native 425-px NSD image.
* MindEye2's CLIP runs in float16 on the GPU (OpenAI ``clip.load``); we run
  float32 unless the caller passes a half-precision model.
* MindEye2's "enhanced" reconstructions (0.75 × refined + 0.25 × blurry) have
  no counterpart here: the reconstructions are scored as given.
* The paper's CLIP ``image_embeds`` come L2-normalised from ``CLIPModel``;
  ours are not, which leaves every Pearson correlation (and so identification)
  unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from brainldm._utils import check_option

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

#: Expected weight file (or folder, for CLIP) of each network inside ``weights_dir``,
#: and where to get it on a machine with internet. brainldm never downloads.
WEIGHT_FILES: dict[str, str] = {
    # torchvision AlexNet_Weights.IMAGENET1K_V1 (the only AlexNet weights).
    "alexnet": "alexnet-owt-7be5be79.pth",
    # torchvision Inception_V3_Weights.IMAGENET1K_V1 (= DEFAULT).
    "inception_v3": "inception_v3_google-0cc3c7bd.pth",
    # torchvision EfficientNet_B1_Weights.IMAGENET1K_V2 (= DEFAULT; MindEye).
    "efficientnet_b1": "efficientnet_b1-c27df63c.pth",
    # torchvision EfficientNet_B1_Weights.IMAGENET1K_V1 (Brain-Diffuser's weights=True).
    "efficientnet_b1_v1": "efficientnet_b1_rwightman-bac287d4.pth",
    # facebookresearch/swav hub "resnet50" checkpoint (800 epochs).
    "swav_resnet50": "swav_800ep_pretrain.pth.tar",
    # Hugging Face openai/clip-vit-large-patch14: config.json + model.safetensors
    # (or pytorch_model.bin), in this folder.
    "clip_vit_l14": "clip-vit-large-patch14",
}

WEIGHT_URLS: dict[str, str] = {
    "alexnet": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "inception_v3": "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
    "efficientnet_b1": "https://download.pytorch.org/models/efficientnet_b1-c27df63c.pth",
    "efficientnet_b1_v1": (
        "https://download.pytorch.org/models/efficientnet_b1_rwightman-bac287d4.pth"
    ),
    "swav_resnet50": "https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar",
    "clip_vit_l14": "https://huggingface.co/openai/clip-vit-large-patch14",
}

NETWORKS = tuple(WEIGHT_FILES)


@dataclass(frozen=True)
class Preprocessing:
    """How uint8 images become a network's input tensor.

    Attributes
    ----------
    size : int or tuple of (int, int)
        An int resizes the shorter side to ``size`` (torchvision ``Resize(int)``);
        a pair (height, width) resizes to exactly that.
    crop : int or None
        Side of the centre crop after resizing; None for no crop.
    backend : {"pil", "tensor"}
        ``"pil"``: each image is resized as a PIL image (always antialiased), as
        ``torchvision.transforms`` on PIL input (the paper; Brain-Diffuser).
        ``"tensor"``: resized as a float tensor in [0, 1] (MindEye).
    interpolation : {"bilinear", "bicubic"}
    antialias : bool
        Tensor backend only. MindEye2 pins torchvision 0.16, whose tensor
        ``Resize`` does not antialias, so its protocol uses False.
    base_size : int or None
        Tensor backend only: first resize every image to (base_size, base_size)
        (MindEye resizes originals and reconstructions to 256 before anything else).
    mean, std : tuple of 3 floats
        Channel normalisation after scaling to [0, 1].
    """

    size: int | tuple[int, int]
    crop: int | None = None
    backend: str = "pil"
    interpolation: str = "bilinear"
    antialias: bool = True
    base_size: int | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        check_option("backend", self.backend, ("pil", "tensor"))
        check_option("interpolation", self.interpolation, ("bilinear", "bicubic"))
        if self.base_size is not None and self.backend != "tensor":
            raise ValueError("base_size is only used with backend='tensor'.")


@dataclass(frozen=True)
class MetricSpec:
    """One metric of a suite.

    Attributes
    ----------
    name : str
        Column name in the scores, e.g. ``"alexnet2"``.
    kind : {"identification", "distance", "pixcorr", "ssim"}
        ``identification``: two-way identification on the features (higher is
        better); ``distance``: correlation distance 1 − r to the own original
        (lower is better); ``pixcorr``/``ssim``: pixel metrics.
    network : str or None
        Key of :data:`WEIGHT_FILES` (or of the ``networks`` passed to
        :func:`evaluate_images`); None for pixel metrics.
    node : str or None
        Module path whose output is flattened (``"features.4"``), or for CLIP
        ``"image_embeds"`` / ``"hidden_states.N"``.
    preprocessing : Preprocessing or None
    label : str
        Name used in the papers' tables.
    """

    name: str
    kind: str
    network: str | None = None
    node: str | None = None
    preprocessing: Preprocessing | None = None
    label: str = ""

    def __post_init__(self) -> None:
        check_option("kind", self.kind, ("identification", "distance", "pixcorr", "ssim"))
        if self.kind in ("identification", "distance") and (
            self.network is None or self.node is None or self.preprocessing is None
        ):
            raise ValueError(
                f"metric {self.name!r} of kind {self.kind!r} needs network, node and preprocessing."
            )

    @property
    def higher_is_better(self) -> bool:
        """False for distances, True otherwise."""
        return self.kind != "distance"


# --- Takagi & Nishimoto 2023 (seed_code.md §6) ------------------------------------------
# img2feat_decoded.py: PIL image -> Resize(299) -> CenterCrop(299) -> ToTensor -> ImageNet
# normalisation, for Inception *and* AlexNet. CLIP through CLIPProcessor: shorter side to
# 224 (bicubic), centre crop 224, CLIP normalisation.
_TAKAGI_CNN = Preprocessing(size=299, crop=299, backend="pil", interpolation="bilinear")
_TAKAGI_CLIP = Preprocessing(
    size=224, crop=224, backend="pil", interpolation="bicubic", mean=CLIP_MEAN, std=CLIP_STD
)

# --- MindEye2 final_evaluations.ipynb (peers.md §1.2-1.3) -------------------------------
# Every image -> float tensor -> Resize((256, 256)); then per network Resize(int) with no
# crop; torchvision 0.16 tensors: no antialiasing.


def _mindeye(size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> Preprocessing:
    return Preprocessing(
        size=size, backend="tensor", interpolation="bilinear", antialias=False,
        base_size=256, mean=mean, std=std,
    )  # fmt: skip


# --- Brain-Diffuser eval_extract_features.py (peers.md §1.2) ----------------------------
# PIL image -> T.functional.resize(img, (224, 224)) -> to_tensor -> normalisation.
_BD = Preprocessing(size=(224, 224), backend="pil", interpolation="bilinear")
_BD_CLIP = Preprocessing(
    size=(224, 224), backend="pil", interpolation="bilinear", mean=CLIP_MEAN, std=CLIP_STD
)

PROTOCOLS: dict[str, tuple[MetricSpec, ...]] = {
    "takagi": (
        MetricSpec("alexnet2", "identification", "alexnet", "features.5", _TAKAGI_CNN,
                   "AlexNet(2)"),
        MetricSpec("alexnet5", "identification", "alexnet", "features.12", _TAKAGI_CNN,
                   "AlexNet(5)"),
        MetricSpec("alexnet7", "identification", "alexnet", "classifier.5", _TAKAGI_CNN,
                   "AlexNet(7)"),
        # The seed reads the 'flatten' node: avgpool -> dropout (identity in eval) -> flatten.
        MetricSpec("inception", "identification", "inception_v3", "avgpool", _TAKAGI_CNN,
                   "InceptionV3"),
        MetricSpec("clip", "identification", "clip_vit_l14", "image_embeds", _TAKAGI_CLIP,
                   "CLIP"),
        MetricSpec("clip_h6", "identification", "clip_vit_l14", "hidden_states.6",
                   _TAKAGI_CLIP, "CLIP layer 6"),
        MetricSpec("clip_h12", "identification", "clip_vit_l14", "hidden_states.12",
                   _TAKAGI_CLIP, "CLIP layer 12"),
    ),
    "mindeye": (
        MetricSpec("pixcorr", "pixcorr", label="PixCorr"),
        MetricSpec("ssim", "ssim", label="SSIM"),
        MetricSpec("alexnet2", "identification", "alexnet", "features.4", _mindeye(256),
                   "AlexNet(2)"),
        MetricSpec("alexnet5", "identification", "alexnet", "features.11", _mindeye(256),
                   "AlexNet(5)"),
        MetricSpec("inception", "identification", "inception_v3", "avgpool", _mindeye(342),
                   "InceptionV3"),
        MetricSpec("clip", "identification", "clip_vit_l14", "image_embeds",
                   _mindeye(224, CLIP_MEAN, CLIP_STD), "CLIP"),
        MetricSpec("effnet", "distance", "efficientnet_b1", "avgpool", _mindeye(255),
                   "EffNet-B"),
        MetricSpec("swav", "distance", "swav_resnet50", "avgpool", _mindeye(224), "SwAV"),
    ),
    "braindiffuser": (
        MetricSpec("pixcorr", "pixcorr", label="PixCorr"),
        MetricSpec("ssim", "ssim", label="SSIM"),
        MetricSpec("alexnet2", "identification", "alexnet", "features.4", _BD, "AlexNet(2)"),
        MetricSpec("alexnet5", "identification", "alexnet", "features.11", _BD, "AlexNet(5)"),
        MetricSpec("inception", "identification", "inception_v3", "avgpool", _BD,
                   "InceptionV3"),
        MetricSpec("clip", "identification", "clip_vit_l14", "image_embeds", _BD_CLIP, "CLIP"),
        MetricSpec("effnet", "distance", "efficientnet_b1_v1", "avgpool", _BD, "EffNet-B"),
        MetricSpec("swav", "distance", "swav_resnet50", "avgpool", _BD, "SwAV"),
    ),
}  # fmt: skip


def get_metrics(protocol: str, metrics=None) -> tuple[MetricSpec, ...]:
    """Return the metric specs of a protocol, optionally a subset by name.

    Parameters
    ----------
    protocol : {"takagi", "mindeye", "braindiffuser"}
    metrics : sequence of str or MetricSpec, optional
        Names from the protocol's suite, or your own :class:`MetricSpec` objects
        (e.g. another network). None for the whole suite.

    Returns
    -------
    specs : tuple of MetricSpec
    """
    check_option("protocol", protocol, tuple(PROTOCOLS))
    suite = {m.name: m for m in PROTOCOLS[protocol]}
    if metrics is None:
        return tuple(suite.values())
    if isinstance(metrics, (str, MetricSpec)):
        metrics = [metrics]
    out = []
    for m in metrics:
        if isinstance(m, MetricSpec):
            out.append(m)
        else:
            check_option(f"metric of protocol {protocol!r}", m, tuple(suite))
            out.append(suite[m])
    names = [m.name for m in out]
    if len(set(names)) != len(names):
        raise ValueError(f"metrics must have distinct names; got {names}.")
    if not out:
        raise ValueError("metrics is empty; pass None for the whole suite.")
    return tuple(out)
