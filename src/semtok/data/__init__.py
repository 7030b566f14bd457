"""Data sets and transforms.

Every data set item is ``(image_3HW float32 in [-1, 1], label int)`` (label -1 when unlabeled); data sets expose
``num_classes`` (0 when unlabeled), ``class_names``, ``__len__``, ``describe()``, ``is_random``, ``seed`` and
``set_epoch(epoch)``: random augmentation is a pure function of (seed, epoch, index).
"""

from semtok.data.build import build_dataset
from semtok.data.folder import ImageFolderDataset, to_rgb
from semtok.data.folder_scan import (
    IMAGE_EXTENSIONS,
    FolderScan,
    SkippedFileWarning,
    find_class_names,
    list_image_files,
    scan_image_folder,
    split_samples,
)
from semtok.data.mnist import MNIST5k, mnist5k_split_indices
from semtok.data.transforms import (
    AUGMENTATIONS,
    TrainTransform,
    ValTransform,
    apply_transform,
    build_transform,
    item_generator,
    mix_seed,
    to_tensor,
    transform_is_random,
)

__all__ = [
    "AUGMENTATIONS",
    "IMAGE_EXTENSIONS",
    "FolderScan",
    "ImageFolderDataset",
    "MNIST5k",
    "SkippedFileWarning",
    "TrainTransform",
    "ValTransform",
    "apply_transform",
    "build_dataset",
    "build_transform",
    "find_class_names",
    "item_generator",
    "list_image_files",
    "mix_seed",
    "mnist5k_split_indices",
    "scan_image_folder",
    "split_samples",
    "to_rgb",
    "to_tensor",
    "transform_is_random",
]
