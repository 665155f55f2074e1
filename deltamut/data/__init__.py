"""Images, labels and input tensors for a study: real photos from installed packages or any image folder."""

from deltamut.data.dataset import Dataset, load_dataset
from deltamut.data.debian import default_debian_cache
from deltamut.data.inputs import build_inputs, load_rgb, preprocess, preprocess_image
from deltamut.data.labels import class_names, default_ground_truth, read_labels
from deltamut.data.photos import CATALOGUE, gather_default_images
from deltamut.data.preprocessing import TFLITE, TORCHVISION, Preprocessing

__all__ = [
    "CATALOGUE",
    "TFLITE",
    "TORCHVISION",
    "Dataset",
    "Preprocessing",
    "build_inputs",
    "class_names",
    "default_debian_cache",
    "default_ground_truth",
    "gather_default_images",
    "load_rgb",
    "load_dataset",
    "preprocess",
    "preprocess_image",
    "read_labels",
]
