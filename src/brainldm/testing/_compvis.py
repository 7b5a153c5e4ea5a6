"""Write a diffusers Stable Diffusion in the CompVis single-file layout (``sd-v1-4.ckpt``).

Used by the tests to exercise :func:`brainldm.ldm.load_ldm` on a single-file
checkpoint without the real multi-GB file. The key names are those of the
CompVis ``ldm`` code (``model.diffusion_model.*``, ``first_stage_model.*``,
``cond_stage_model.transformer.*``).
"""

from __future__ import annotations

import re

_RESNET_UNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_VAE_ATTENTION = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}


def _unet_key(key: str, layers: int, up_has_attention: list[bool]) -> str:
    fixed = {
        "time_embedding.linear_1": "time_embed.0",
        "time_embedding.linear_2": "time_embed.2",
        "conv_in": "input_blocks.0.0",
        "conv_norm_out": "out.0",
        "conv_out": "out.2",
    }
    for new, old in fixed.items():
        if key.startswith(new + "."):
            return old + key[len(new) :]
    m = re.match(r"(down|up)_blocks\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)\.(.*)", key)
    if m:
        side, b, kind, idx, rest = m.group(1), int(m.group(2)), m.group(3), int(m.group(4)), m.group(5)
        if side == "down":
            if kind == "downsamplers":
                return f"input_blocks.{1 + b * (layers + 1) + layers}.0.op.{rest.split('.', 1)[1]}"
            block = 1 + b * (layers + 1) + idx
        else:
            if kind == "upsamplers":
                slot = 2 if up_has_attention[b] else 1
                return f"output_blocks.{b * (layers + 1) + layers}.{slot}.{rest}"
            block = b * (layers + 1) + idx
        prefix = "input_blocks" if side == "down" else "output_blocks"
        if kind == "resnets":
            name, tail = rest.split(".", 1)
            return f"{prefix}.{block}.0.{_RESNET_UNET[name]}.{tail}"
        return f"{prefix}.{block}.1.{rest}"
    m = re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key)
    if m:
        kind, idx, rest = m.groups()
        if kind == "attentions":
            return f"middle_block.1.{rest}"
        name, tail = rest.split(".", 1)
        return f"middle_block.{0 if idx == '0' else 2}.{_RESNET_UNET[name]}.{tail}"
    raise KeyError(f"no CompVis name for U-Net key {key!r}")


def _vae_key(key: str, n_blocks: int) -> tuple[str, bool]:
    """CompVis name of a VAE key, and whether it is an attention linear weight."""
    for part, old in (("conv_norm_out", "norm_out"),):
        key = key.replace(f"coder.{part}.", f"coder.{old}.")
    m = re.match(r"(encoder|decoder)\.(down|up)_blocks\.(\d+)\.(resnets|downsamplers|upsamplers)\.(\d+)\.(.*)", key)
    if m:
        coder, side, b, kind, idx, rest = m.groups()
        b = int(b) if side == "down" else n_blocks - 1 - int(b)
        if kind == "resnets":
            rest = rest.replace("conv_shortcut", "nin_shortcut")
            return f"{coder}.{side}.{b}.block.{idx}.{rest}", False
        return f"{coder}.{side}.{b}.{'downsample' if side == 'down' else 'upsample'}.{rest}", False
    m = re.match(r"(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key)
    if m:
        coder, kind, idx, rest = m.groups()
        if kind == "resnets":
            return f"{coder}.mid.block_{int(idx) + 1}.{rest}", False
        for new, old in _VAE_ATTENTION.items():
            if rest.startswith(new + "."):
                is_linear = new != "group_norm" and rest.endswith("weight")
                return f"{coder}.mid.attn_1.{old}{rest[len(new):]}", is_linear
    return key, False


def to_compvis_state_dict(ldm) -> dict:
    """The state dict of ``ldm`` under CompVis Stable Diffusion key names.

    Returns
    -------
    state_dict : dict of str to torch.Tensor
    """
    unet_config = ldm.unet.config
    layers = unet_config.layers_per_block
    up_attn = ["CrossAttn" in t for t in unet_config.up_block_types]
    state = {}
    for key, value in ldm.unet.state_dict().items():
        state["model.diffusion_model." + _unet_key(key, layers, up_attn)] = value.clone()
    n_blocks = len(ldm.vae.config.block_out_channels)
    for key, value in ldm.vae.state_dict().items():
        name, is_linear = _vae_key(key, n_blocks)
        state["first_stage_model." + name] = value[:, :, None, None].clone() if is_linear else value.clone()
    for key, value in ldm.text_encoder.state_dict().items():
        state["cond_stage_model.transformer." + key] = value.clone()
    return state
