"""Encoders and feature adapters (registered by name), the ASPP head and the multi-task network."""

from lhl.models.adapters import SideAdapter
from lhl.models.encoders import ResNetEncoder, file_sha256, load_encoder_weights
from lhl.models.heads import ASPPHead
from lhl.models.network import MultiTaskNet

__all__ = ["ASPPHead", "MultiTaskNet", "ResNetEncoder", "SideAdapter", "file_sha256", "load_encoder_weights"]
