"""Architectures, layer names, feature shapes, preprocessing and local weight loading.

Random-initialised networks: shapes and code paths only (no weights are downloaded).
"""

import os
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tvm = pytest.importorskip("torchvision.models")
pytest.importorskip("transformers")

from evaluation_helpers import TINY_CLIP  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision import transforms as T  # noqa: E402

from brainldm.evaluation import (  # noqa: E402
    CLIP_VIT_L14_CONFIG,
    NETWORKS,
    PROTOCOLS,
    WEIGHT_FILES,
    build_network,
    extract_network_features,
    file_sha256,
    get_metrics,
    load_network,
    preprocess_images,
)

pytestmark = pytest.mark.torch


#: Flattened feature size of every suite metric, at the protocol's input size.
#: CLIP is pinned at full ViT-L/14 size (768; 257 tokens × 1024) on the meta device.
FEATURE_SIZES = {
    "takagi": {
        "alexnet2": 192 * 17 * 17,
        "alexnet5": 256 * 8 * 8,
        "alexnet7": 4096,
        "inception": 2048,
        "clip": 768,
        "clip_h6": 257 * 1024,
        "clip_h12": 257 * 1024,
    },
    "mindeye": {
        "alexnet2": 192 * 31 * 31,
        "alexnet5": 256 * 15 * 15,
        "inception": 2048,
        "clip": 768,
        "effnet": 1280,
        "swav": 2048,
    },
    "braindiffuser": {
        "alexnet2": 192 * 27 * 27,
        "alexnet5": 256 * 13 * 13,
        "inception": 2048,
        "clip": 768,
        "effnet": 1280,
        "swav": 2048,
    },
}
INPUT_SIZES = {
    ("takagi", "alexnet"): 299,
    ("takagi", "inception_v3"): 299,
    ("takagi", "clip_vit_l14"): 224,
    ("mindeye", "alexnet"): 256,
    ("mindeye", "inception_v3"): 342,
    ("mindeye", "clip_vit_l14"): 224,
    ("mindeye", "efficientnet_b1"): 255,
    ("mindeye", "swav_resnet50"): 224,
    ("braindiffuser", "alexnet"): 224,
    ("braindiffuser", "inception_v3"): 224,
    ("braindiffuser", "clip_vit_l14"): 224,
    ("braindiffuser", "efficientnet_b1_v1"): 224,
    ("braindiffuser", "swav_resnet50"): 224,
}
LAYERS = {
    "takagi": {
        "alexnet2": "features.5",
        "alexnet5": "features.12",
        "alexnet7": "classifier.5",
        "inception": "avgpool",
        "clip": "image_embeds",
        "clip_h6": "hidden_states.6",
        "clip_h12": "hidden_states.12",
    },
    "mindeye": {
        "alexnet2": "features.4",
        "alexnet5": "features.11",
        "inception": "avgpool",
        "clip": "image_embeds",
        "effnet": "avgpool",
        "swav": "avgpool",
    },
}


@pytest.fixture(scope="module")
def nsd_like():
    """Two 425-px originals (uint8), as load_stimulus_images returns them."""
    return np.random.default_rng(0).integers(0, 256, (2, 425, 425, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def nets():
    return {}


def _net(nets, name):
    if name not in nets:
        torch.manual_seed(0)  # random weights: the same network (and margins) every run
        nets[name] = build_network(name, clip_config=TINY_CLIP)
    return nets[name]


def test_suites_are_pinned():
    assert set(PROTOCOLS) == {"takagi", "mindeye", "braindiffuser"}
    for protocol, layers in LAYERS.items():
        assert {m.name: m.node for m in PROTOCOLS[protocol] if m.node} == layers
    assert [m.name for m in PROTOCOLS["mindeye"]] == [
        "pixcorr",
        "ssim",
        "alexnet2",
        "alexnet5",
        "inception",
        "clip",
        "effnet",
        "swav",
    ]
    kinds = {m.name: m.kind for m in PROTOCOLS["mindeye"]}
    assert kinds["effnet"] == kinds["swav"] == "distance"
    assert {m.network for m in PROTOCOLS["mindeye"] if m.name == "effnet"} == {"efficientnet_b1"}
    assert {m.network for m in PROTOCOLS["braindiffuser"] if m.name == "effnet"} == {
        "efficientnet_b1_v1"
    }
    for (protocol, network), size in INPUT_SIZES.items():
        preps = {m.preprocessing for m in PROTOCOLS[protocol] if m.network == network}
        assert len(preps) == 1
        prep = preps.pop()
        assert prep.size in (size, (size, size))
    me = [m.preprocessing for m in PROTOCOLS["mindeye"] if m.preprocessing]
    assert all(p.backend == "tensor" and p.base_size == 256 and not p.antialias for p in me)


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_preprocessed_input_sizes(protocol, nsd_like):
    recon_like = np.random.default_rng(1).integers(0, 256, (1, 512, 512, 3), dtype=np.uint8)
    for (proto, network), size in INPUT_SIZES.items():
        if proto != protocol:
            continue
        prep = next(m.preprocessing for m in PROTOCOLS[protocol] if m.network == network)
        for images in (nsd_like, recon_like):
            x = preprocess_images(images, prep)
            assert tuple(x.shape) == (len(images), 3, size, size) and x.dtype == torch.float32


def test_takagi_preprocessing_equals_seed_code():
    img = np.random.default_rng(2).integers(0, 256, (1, 300, 451, 3), dtype=np.uint8)
    seed = T.Compose(
        [
            T.Resize(299),
            T.CenterCrop(299),
            T.ToTensor(),
            T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )
    prep = next(m.preprocessing for m in PROTOCOLS["takagi"] if m.name == "alexnet2")
    torch.testing.assert_close(
        preprocess_images(img, prep)[0], seed(Image.fromarray(img[0])), rtol=0, atol=0
    )


def test_takagi_clip_preprocessing_equals_clip_processor():
    transformers = pytest.importorskip("transformers")
    processor = getattr(transformers, "CLIPImageProcessorPil", None)
    if processor is None:
        pytest.skip("transformers has no PIL CLIP processor")
    imgs = np.random.default_rng(3).integers(0, 256, (2, 300, 451, 3), dtype=np.uint8)
    prep = next(m.preprocessing for m in PROTOCOLS["takagi"] if m.name == "clip")
    ref = processor()(list(imgs), return_tensors="np")["pixel_values"]
    np.testing.assert_allclose(preprocess_images(imgs, prep).numpy(), ref, atol=1e-6)


def test_mindeye_preprocessing_equals_final_evaluations():
    imgs = np.random.default_rng(4).integers(0, 256, (2, 425, 425, 3), dtype=np.uint8)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
    # final_evaluations.ipynb with torchvision 0.16: tensor Resize does not antialias.
    x = T.Resize((256, 256), antialias=False)(x).float()
    ref = T.Compose(
        [
            T.Resize(342, interpolation=T.InterpolationMode.BILINEAR, antialias=False),
            T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )(x)
    prep = next(m.preprocessing for m in PROTOCOLS["mindeye"] if m.name == "inception")
    torch.testing.assert_close(preprocess_images(imgs, prep), ref, rtol=0, atol=0)


def test_braindiffuser_preprocessing_equals_eval_extract_features():
    imgs = np.random.default_rng(5).integers(0, 256, (1, 512, 512, 3), dtype=np.uint8)
    clip_norm = T.Normalize(
        mean=[0.48145466, 0.4578275, 0.40821073], std=[0.26862954, 0.26130258, 0.27577711]
    )
    ref = clip_norm(
        T.functional.to_tensor(T.functional.resize(Image.fromarray(imgs[0]), (224, 224)))
    )
    prep = next(m.preprocessing for m in PROTOCOLS["braindiffuser"] if m.name == "clip")
    torch.testing.assert_close(preprocess_images(imgs, prep)[0], ref, rtol=0, atol=0)


def _meta_features(network, nodes, input_shape):
    """Flattened node shapes of the full-size network, run on the meta device (no compute)."""
    with torch.device("meta"):
        model = build_network(network)
        x = torch.empty(input_shape)
        if network == "clip_vit_l14":
            out = model(pixel_values=x, output_hidden_states=True)
            return {
                n: (out.image_embeds if n == "image_embeds"
                    else out.hidden_states[int(n.split(".")[1])]).flatten(1).shape
                for n in nodes
            }  # fmt: skip
        shapes = {}
        for n in nodes:
            model.get_submodule(n).register_forward_hook(
                lambda m, i, o, n=n: shapes.__setitem__(n, o.flatten(1).shape)
            )
        model(x)
        return shapes


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_feature_shapes_of_every_extractor(protocol, nsd_like):
    # Full-size architectures at the protocol's real input size, on the meta device.
    specs = get_metrics(protocol)
    for network in dict.fromkeys(s.network for s in specs if s.network):
        group = [s for s in specs if s.network == network]
        x = preprocess_images(nsd_like[:1], group[0].preprocessing)
        shapes = _meta_features(network, [s.node for s in group], tuple(x.shape))
        for spec in group:
            assert shapes[spec.node] == (1, FEATURE_SIZES[protocol][spec.name]), spec


def test_extract_features_runs_every_network(nsd_like, nets):
    # The real (CPU) path once per architecture, tiny CLIP; shapes as on the meta device.
    for network, node, prep, size in [
        ("alexnet", "features.12", PROTOCOLS["takagi"][1].preprocessing, 256 * 8 * 8),
        ("inception_v3", "avgpool", PROTOCOLS["braindiffuser"][4].preprocessing, 2048),
        ("efficientnet_b1", "avgpool", PROTOCOLS["braindiffuser"][6].preprocessing, 1280),
        ("swav_resnet50", "avgpool", PROTOCOLS["braindiffuser"][7].preprocessing, 2048),
        ("clip_vit_l14", "hidden_states.6", PROTOCOLS["takagi"][5].preprocessing, 257 * 32),
    ]:
        feats = extract_network_features(nsd_like[:1], _net(nets, network), [node], prep)[node]
        assert feats.shape == (1, size) and feats.dtype == np.float32, network
        assert np.all(np.isfinite(feats))


def test_full_size_clip_config():
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    with torch.device("meta"):
        model = CLIPVisionModelWithProjection(CLIPVisionConfig(**CLIP_VIT_L14_CONFIG))
    assert sum(p.numel() for p in model.parameters()) == 303_966_208  # ViT-L/14 + projection
    assert model.config.num_hidden_layers == 24 and model.config.patch_size == 14


def test_extract_features_keeps_sample_axis_and_batches(nets):
    imgs = np.random.default_rng(6).integers(0, 256, (3, 2, 64, 64, 3), dtype=np.uint8)
    prep = next(m.preprocessing for m in PROTOCOLS["mindeye"] if m.name == "alexnet2")
    model = _net(nets, "alexnet")
    a = extract_network_features(imgs, model, ["features.4"], prep, batch_size=4)["features.4"]
    b = extract_network_features(imgs.reshape(6, 64, 64, 3), model, ["features.4"], prep, batch_size=6)
    assert a.shape == (3, 2, 192 * 31 * 31)
    # float32 convolutions at batch 4 and 6: equal to float32 precision (a kernel may pick
    # another algorithm by batch size, so no bit-equality)
    np.testing.assert_allclose(a.reshape(6, -1), b["features.4"], rtol=1e-4, atol=1e-5)
    # hooks are removed afterwards
    assert not any(m._forward_hooks for m in model.modules())


def test_extract_features_node_errors(nets):
    imgs = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    prep = PROTOCOLS["mindeye"][2].preprocessing
    with pytest.raises(ValueError, match="node 'features.99' is not a module of AlexNet"):
        extract_network_features(imgs, _net(nets, "alexnet"), ["features.99"], prep)
    with pytest.raises(ValueError, match="node 'hidden_states.13' is not valid for CLIP"):
        extract_network_features(imgs, _net(nets, "clip_vit_l14"), ["hidden_states.13"], prep)
    with pytest.raises(TypeError, match="must be uint8"):
        extract_network_features(imgs.astype(float), _net(nets, "alexnet"), ["features.4"], prep)


def test_weight_file_names_are_torchvision_names():
    from torchvision.models import (
        AlexNet_Weights,
        EfficientNet_B1_Weights,
        Inception_V3_Weights,
    )

    base = os.path.basename
    assert WEIGHT_FILES["alexnet"] == base(AlexNet_Weights.IMAGENET1K_V1.url)
    assert WEIGHT_FILES["inception_v3"] == base(Inception_V3_Weights.DEFAULT.url)
    assert WEIGHT_FILES["efficientnet_b1"] == base(EfficientNet_B1_Weights.DEFAULT.url)
    assert WEIGHT_FILES["efficientnet_b1_v1"] == base(EfficientNet_B1_Weights.IMAGENET1K_V1.url)
    assert set(WEIGHT_FILES) == set(NETWORKS)


def test_missing_weight_file_error(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=r"weights for network 'alexnet' not found: "
        r"expected the file .*alexnet-owt-7be5be79\.pth.*brainldm fetch weights --to "
        + re.escape(str(tmp_path)) + r" --only alexnet.*nothing else in brainldm downloads",
    ):
        load_network("alexnet", tmp_path)
    with pytest.raises(
        FileNotFoundError, match=r"'clip_vit_l14' not found.*clip-vit-large-patch14.*--to "
        + re.escape(str(tmp_path)) + " --only clip_vit_l14"
    ):
        load_network("clip_vit_l14", tmp_path)
    with pytest.raises(ValueError, match="network='vgg16' is not valid; allowed: 'alexnet'"):
        load_network("vgg16", tmp_path)


def test_load_torchvision_weights_and_hash(tmp_path):
    # EfficientNet-B1 (31 MB) rather than AlexNet (244 MB): the same code path, less disk.
    model = build_network("efficientnet_b1")
    path = tmp_path / WEIGHT_FILES["efficientnet_b1"]
    torch.save(model.state_dict(), path)
    with pytest.raises(ValueError, match="SHA-256 .* should start with c27df63c"):
        load_network("efficientnet_b1", tmp_path)
    loaded, hashes = load_network("efficientnet_b1", tmp_path, verify=False)
    assert hashes == {WEIGHT_FILES["efficientnet_b1"]: file_sha256(path)}
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    assert not loaded.training
    torch.save({k: v for k, v in model.state_dict().items() if "classifier" not in k}, path)
    with pytest.raises(ValueError, match="does not fit the 'efficientnet_b1' architecture"):
        load_network("efficientnet_b1", tmp_path, verify=False)


def test_load_inception_drops_aux_head(tmp_path):
    torch.save(build_network("inception_v3").state_dict(), tmp_path / WEIGHT_FILES["inception_v3"])
    model, _ = load_network("inception_v3", tmp_path, verify=False)
    assert model.transform_input is True  # as torchvision builds it for pretrained weights
    assert model.AuxLogits is None and model.aux_logits is False


def test_load_swav_checkpoint_layout(tmp_path):
    state = {
        f"module.{k}": v
        for k, v in build_network("swav_resnet50").state_dict().items()
        if not k.startswith("fc.")
    }
    state["module.projection_head.0.weight"] = torch.zeros(3)  # ignored, as in the hub code
    path = tmp_path / WEIGHT_FILES["swav_resnet50"]
    torch.save(state, path)
    model, hashes = load_network("swav_resnet50", tmp_path)  # no hash in this file name
    torch.testing.assert_close(model.conv1.weight, state["module.conv1.weight"])
    assert hashes == {"swav_800ep_pretrain.pth.tar": file_sha256(path)}
    del state["module.layer1.0.conv1.weight"]
    torch.save(state, path)
    with pytest.raises(ValueError, match="does not fit the 'swav_resnet50' architecture"):
        load_network("swav_resnet50", tmp_path)


def test_load_clip_folder(tmp_path):
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(
        text_config=dict(
            hidden_size=16,
            intermediate_size=20,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=77,
        ),
        vision_config=dict(
            hidden_size=16,
            intermediate_size=20,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=224,
            patch_size=14,
        ),
        projection_dim=8,
    )
    full = CLIPModel(config).eval()
    full.save_pretrained(tmp_path / WEIGHT_FILES["clip_vit_l14"])
    model, hashes = load_network("clip_vit_l14", tmp_path)
    assert list(hashes) == ["clip-vit-large-patch14/model.safetensors"]
    imgs = np.random.default_rng(7).integers(0, 256, (2, 425, 425, 3), dtype=np.uint8)
    prep = next(m.preprocessing for m in PROTOCOLS["mindeye"] if m.name == "clip")
    feats = extract_network_features(imgs, model, ["image_embeds", "hidden_states.2"], prep)
    with torch.inference_mode():
        x = preprocess_images(imgs, prep)
        ref = full.visual_projection(full.vision_model(pixel_values=x).pooler_output)
    np.testing.assert_allclose(feats["image_embeds"], ref.numpy(), rtol=1e-5, atol=1e-6)
    assert feats["hidden_states.2"].shape == (2, 257 * 16)
    # A checkpoint that does not fit its config is an error, not a silent random init.
    import json

    cfg_path = tmp_path / WEIGHT_FILES["clip_vit_l14"] / "config.json"
    raw = json.loads(cfg_path.read_text())
    raw["vision_config"]["hidden_size"] = 24
    cfg_path.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="does not fit the CLIP vision architecture"):
        load_network("clip_vit_l14", tmp_path)


def test_pixel_preparation_equals_peers():
    from brainldm.evaluation import prepare_pixel_images

    imgs = np.random.default_rng(8).integers(0, 256, (2, 512, 512, 3), dtype=np.uint8)
    # MindEye2: float tensors, Resize((256, 256)) then Resize(425), torchvision 0.16 tensors.
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
    x = T.Resize((256, 256), antialias=False)(x).float()
    ref = T.Resize(425, interpolation=T.InterpolationMode.BILINEAR, antialias=False)(x)
    got = prepare_pixel_images(imgs, "mindeye")
    assert got.shape == (2, 425, 425, 3) and got.dtype == np.float32
    np.testing.assert_array_equal(got, ref.permute(0, 2, 3, 1).numpy())
    # Brain-Diffuser: Image.open(png).resize((425, 425)) (PIL's default, bicubic) / 255.0.
    got = prepare_pixel_images(imgs[:, None], "braindiffuser")
    ref = np.array(Image.fromarray(imgs[1]).resize((425, 425))) / 255.0
    assert got.shape == (2, 1, 425, 425, 3) and got.dtype == np.float64
    np.testing.assert_array_equal(got[1, 0], ref)
    native = imgs[:, :425, :425]
    np.testing.assert_array_equal(prepare_pixel_images(native, "braindiffuser"), native / 255.0)
