"""brainldm: images from brain activity with a latent diffusion model.

A reimplementation of Takagi & Nishimoto, "High-resolution image
reconstruction with latent diffusion models from human brain activity",
CVPR 2023. Importing the package loads no heavy dependency (torch,
diffusers, matplotlib); each subpackage imports those lazily.
"""

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
