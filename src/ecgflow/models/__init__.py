"""Neural networks for ECG training: signal encoders, a CLIP model, a classifier, and their I/O."""

from ecgflow.models.classifier import Classifier, ClassifierConfig
from ecgflow.models.clip import ClipConfig, ClipModel, clip_loss
from ecgflow.models.encoders import EncoderConfig, ResNet1d, ViT1d, build_encoder
from ecgflow.models.io import load_ecg_encoder_state, load_model, save_model
from ecgflow.models.text_encoder import TextEncoder, TextEncoderConfig

__all__ = [
    "Classifier",
    "ClassifierConfig",
    "ClipConfig",
    "ClipModel",
    "EncoderConfig",
    "ResNet1d",
    "TextEncoder",
    "TextEncoderConfig",
    "ViT1d",
    "build_encoder",
    "clip_loss",
    "load_ecg_encoder_state",
    "load_model",
    "save_model",
]
