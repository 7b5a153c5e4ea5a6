"""Evaluation networks: architectures, local weights, preprocessing, feature extraction.

torch, torchvision, transformers and PIL are imported inside the functions, so
importing :mod:`brainldm.evaluation` stays light. Weights come only from local
files in a ``weights_dir`` (names in :data:`WEIGHT_FILES`); nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from brainldm._utils import check_option, check_positive_int
from brainldm.evaluation._protocols import NETWORKS, WEIGHT_FILES, WEIGHT_URLS, Preprocessing

logger = logging.getLogger(__name__)

#: CLIP ViT-L/14 vision tower (openai/clip-vit-large-patch14), for the random architecture.
CLIP_VIT_L14_CONFIG = dict(
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=24,
    num_attention_heads=16,
    image_size=224,
    patch_size=14,
    projection_dim=768,
    hidden_act="quick_gelu",
    layer_norm_eps=1e-5,
)

#: Weight files of a CLIP folder, in the order :func:`load_network` looks for them.
CLIP_WEIGHT_NAMES = ("model.safetensors", "pytorch_model.bin")

#: torchvision's file names carry the first hex digits of their SHA-256
#: (``alexnet-owt-7be5be79.pth``); group 1 is those digits.
TORCHVISION_HASH = re.compile(r"-([a-f0-9]{8,})\.")


def torchvision_sha256_prefix(name: str) -> str | None:
    """The SHA-256 digits in a torchvision file name (``alexnet-owt-7be5be79.pth``), or None."""
    match = TORCHVISION_HASH.search(name)
    return match.group(1) if match else None


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def build_network(network: str, *, clip_config: dict | None = None):
    """Build an evaluation network's architecture, randomly initialised (no weights).

    For shape checks and tests; :func:`load_network` adds the real weights.

    Parameters
    ----------
    network : str
        One of :data:`NETWORKS`.
    clip_config : dict, optional
        ``transformers.CLIPVisionConfig`` arguments replacing ViT-L/14's
        (:data:`CLIP_VIT_L14_CONFIG`), e.g. a tiny model for tests.

    Returns
    -------
    model : torch.nn.Module
        In eval mode, on CPU, float32.
    """
    check_option("network", network, NETWORKS)
    return _architecture(network, clip_config, random_init=True)


def _architecture(network: str, clip_config: dict | None, random_init: bool):
    import torchvision.models as tvm

    if network == "alexnet":
        model = tvm.alexnet(weights=None)
    elif network == "inception_v3":
        # As torchvision builds it for pretrained weights: transform_input=True (the Google
        # weights expect inputs in [-1, 1]; it re-maps ImageNet-normalised input). For a
        # random network use torchvision's own initialisation: PyTorch's default one gives
        # denormal activations that make a CPU forward pass ~20 times slower.
        model = tvm.inception_v3(
            weights=None, aux_logits=True, transform_input=True, init_weights=random_init
        )
    elif network in ("efficientnet_b1", "efficientnet_b1_v1"):
        model = tvm.efficientnet_b1(weights=None)
    elif network == "swav_resnet50":
        model = tvm.resnet50(weights=None)  # the SwAV hub model is torchvision's resnet50
    else:  # clip_vit_l14
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        config = CLIPVisionConfig(**{**CLIP_VIT_L14_CONFIG, **(clip_config or {})})
        model = CLIPVisionModelWithProjection(config)
    return model.float().eval()


def _check_hash_prefix(path: Path, sha256: str) -> None:
    """Check a torchvision file name's hash digits (the start of its SHA-256)."""
    prefix = torchvision_sha256_prefix(path.name)
    if prefix and not sha256.startswith(prefix):
        raise ValueError(
            f"weights file {path} has SHA-256 {sha256[:12]}…, but its name says it should "
            f"start with {prefix}; the file is corrupt or not the official one. "
            "Pass verify=False to load it anyway."
        )


def _missing(network: str, weights_dir: Path, path: Path, what: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"weights for network {network!r} not found: expected {what} {path}. "
        f"Run `brainldm fetch weights --to {weights_dir} --only {network}` on a machine with "
        f"internet access, or download {WEIGHT_URLS[network]} and put it there; nothing "
        "else in brainldm downloads."
    )


def load_network(network: str, weights_dir: str | os.PathLike, *, verify: bool = True):
    """Load an evaluation network with its weights read from a local file.

    Parameters
    ----------
    network : str
        One of :data:`NETWORKS`.
    weights_dir : path-like
        Folder holding ``WEIGHT_FILES[network]``.
    verify : bool
        Check that the SHA-256 of a torchvision weight file starts with the
        digits in its name (torchvision's own check).

    Returns
    -------
    model : torch.nn.Module
        In eval mode, on CPU, float32.
    weights_sha256 : dict of {str: str}
        SHA-256 of every weight file read, keyed by its path relative to ``weights_dir``.

    Raises
    ------
    FileNotFoundError
        The expected file (or CLIP folder) is missing; the message names it.
    ValueError
        A hash mismatch, or a checkpoint that does not fit the architecture.
    """
    check_option("network", network, NETWORKS)
    import torch

    weights_dir = Path(weights_dir)
    path = weights_dir / WEIGHT_FILES[network]
    if network == "clip_vit_l14":
        if not (path / "config.json").is_file():
            raise _missing(network, weights_dir, path / "config.json", "the CLIP folder with")
        files = [path / n for n in CLIP_WEIGHT_NAMES if (path / n).is_file()]
        if not files:
            raise _missing(network, weights_dir, path / CLIP_WEIGHT_NAMES[0], "the weight file")
        hashes = {f"{path.name}/{files[0].name}": file_sha256(files[0])}
        model = _load_clip_vision(path, files[0])
        logger.info("loaded %s from %s", network, files[0])
        return model, hashes

    if not path.is_file():
        raise _missing(network, weights_dir, path, "the file")
    sha256 = file_sha256(path)
    if verify:
        _check_hash_prefix(path, sha256)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    model = _architecture(network, None, random_init=False)
    try:
        if network == "swav_resnet50":
            # As the SwAV hub entry point: drop the DataParallel "module." prefix, ignore the
            # projection head and prototypes; fc stays random (it is never used here).
            state = {k.replace("module.", ""): v for k, v in state.items()}
            result = model.load_state_dict(state, strict=False)
            missing = set(result.missing_keys) - {"fc.weight", "fc.bias"}
            if missing:
                raise RuntimeError(f"missing keys {sorted(missing)[:5]}")
        else:
            model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"{path} does not fit the {network!r} architecture: {str(err)[:300]}"
        ) from None
    if network == "inception_v3":  # as torchvision does after loading: drop the aux head
        model.aux_logits = False
        model.AuxLogits = None
    logger.info("loaded %s from %s (sha256 %s)", network, path, sha256[:12])
    return model.float().eval(), {path.name: sha256}


def _load_clip_vision(folder: Path, weight_file: Path):
    """Load the vision tower + projection of a Hugging Face CLIP folder, strictly.

    Reads the checkpoint ourselves (not ``from_pretrained``) so that a missing or
    mis-shaped tensor is an error instead of a silent random initialisation, and
    so that ``projection_dim`` comes from the top level of a full CLIP config.
    """
    import json

    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    raw = json.loads((folder / "config.json").read_text())
    if (
        raw.get("model_type") == "clip"
    ):  # a full CLIPModel folder, e.g. openai/clip-vit-large-patch14
        vision = dict(raw.get("vision_config") or {})
        vision["projection_dim"] = raw.get("projection_dim", vision.get("projection_dim"))
        config = CLIPVisionConfig.from_dict({k: v for k, v in vision.items() if v is not None})
    else:
        config = CLIPVisionConfig.from_dict(raw)
    if weight_file.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(weight_file)
    else:
        state = torch.load(weight_file, map_location="cpu", weights_only=True)
    wanted = ("vision_model.", "visual_projection.")
    state = {
        k: v for k, v in state.items() if k.startswith(wanted) and not k.endswith("position_ids")
    }
    model = CLIPVisionModelWithProjection(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"{weight_file} does not fit the CLIP vision architecture of {folder / 'config.json'}: "
            f"{str(err)[:300]}"
        ) from None
    return model.float().eval()


def _check_images(images, name: str = "images") -> np.ndarray:
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise TypeError(f"{name} must be uint8 RGB arrays; got dtype {arr.dtype}.")
    if arr.ndim < 4 or arr.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (..., H, W, 3); got {arr.shape}.")
    return arr


def preprocess_images(images, preprocessing: Preprocessing):
    """Network input tensor from uint8 images, as the protocol's reference code builds it.

    Parameters
    ----------
    images : array of uint8, shape (n_images, H, W, 3)
    preprocessing : Preprocessing

    Returns
    -------
    x : torch.Tensor of shape (n_images, 3, h, w), float32
    """
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    images = _check_images(images)
    interp = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}[
        preprocessing.interpolation
    ]
    size = [preprocessing.size] if isinstance(preprocessing.size, int) else list(preprocessing.size)
    if preprocessing.backend == "pil":
        from PIL import Image

        tensors = []
        for image in images:
            pil = TF.resize(Image.fromarray(image), size, interpolation=interp)
            if preprocessing.crop is not None:
                pil = TF.center_crop(pil, [preprocessing.crop])
            tensors.append(TF.to_tensor(pil))
        x = torch.stack(tensors)
    else:
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
        if preprocessing.base_size is not None and tuple(x.shape[-2:]) != (
            preprocessing.base_size,
            preprocessing.base_size,
        ):
            x = TF.resize(
                x,
                [preprocessing.base_size] * 2,
                interpolation=interp,
                antialias=preprocessing.antialias,
            )
        x = TF.resize(x, size, interpolation=interp, antialias=preprocessing.antialias)
        if preprocessing.crop is not None:
            x = TF.center_crop(x, [preprocessing.crop])
    return TF.normalize(x, list(preprocessing.mean), list(preprocessing.std))


def _is_hf_clip(model) -> bool:
    return type(model).__name__.startswith("CLIPVision")


def extract_network_features(
    images,
    model,
    nodes: Sequence[str],
    preprocessing: Preprocessing,
    *,
    batch_size: int = 16,
    device: str = "cpu",
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Flattened activations of named layers of a network, for a stack of images.

    Parameters
    ----------
    images : array of uint8, shape (..., H, W, 3)
        E.g. (n_images, H, W, 3) or (n_images, n_samples, H, W, 3).
    model : torch.nn.Module
        A torchvision-style network (``nodes`` are module paths such as
        ``"features.4"``, read with forward hooks) or a transformers
        ``CLIPVisionModelWithProjection`` (``nodes`` are ``"image_embeds"`` or
        ``"hidden_states.N"``; N = 0 is the embedding output). Used as it is:
        the caller puts it on ``device`` and in eval mode.
    nodes : sequence of str
    preprocessing : Preprocessing
    batch_size : int
    device : str
        Where the input batches go.
    progress : bool
        Show a progress bar.

    Returns
    -------
    features : dict of {node: ndarray of float32, shape (..., n_features)}
        Leading axes as in ``images``.
    """
    import torch
    from tqdm.auto import tqdm

    images = _check_images(images)
    batch_size = check_positive_int("batch_size", batch_size)
    nodes = list(nodes)
    if not nodes:
        raise ValueError("nodes is empty; name at least one layer.")
    lead = images.shape[:-3]
    flat = images.reshape(-1, *images.shape[-3:])
    hf = _is_hf_clip(model)
    captured: dict[str, torch.Tensor] = {}
    handles = []
    if hf:
        n_layers = model.config.num_hidden_layers
        for node in nodes:
            m = re.fullmatch(r"hidden_states\.(\d+)", node)
            if node != "image_embeds" and not (m and int(m.group(1)) <= n_layers):
                raise ValueError(
                    f"node {node!r} is not valid for CLIP; allowed: 'image_embeds', "
                    f"'hidden_states.0' … 'hidden_states.{n_layers}'."
                )
    else:
        names = dict(model.named_modules())
        for node in nodes:
            if node not in names or node == "":
                raise ValueError(
                    f"node {node!r} is not a module of {type(model).__name__}; "
                    f"e.g. {', '.join(repr(n) for n in list(names)[1:8])} …"
                )

            def hook(module, inputs, output, node=node):
                captured[node] = output.detach().flatten(1).float().cpu().clone()

            handles.append(names[node].register_forward_hook(hook))

    outputs: dict[str, list[np.ndarray]] = {node: [] for node in nodes}
    try:
        with torch.inference_mode():
            for start in tqdm(
                range(0, len(flat), batch_size), disable=not progress, desc="features"
            ):
                x = preprocess_images(flat[start : start + batch_size], preprocessing).to(device)
                if hf:
                    want_hidden = any(n.startswith("hidden_states") for n in nodes)
                    out = model(pixel_values=x, output_hidden_states=want_hidden)
                    for node in nodes:
                        t = (
                            out.image_embeds
                            if node == "image_embeds"
                            else out.hidden_states[int(node.split(".")[1])]
                        )
                        outputs[node].append(t.flatten(1).float().cpu().numpy())
                else:
                    captured.clear()
                    model(x)
                    for node in nodes:
                        outputs[node].append(captured[node].numpy())
    finally:
        for handle in handles:
            handle.remove()
    return {
        node: np.concatenate(chunks).reshape(*lead, -1).astype(np.float32, copy=False)
        for node, chunks in outputs.items()
    }
