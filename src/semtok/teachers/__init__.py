"""Teachers: frozen image-understanding models behind one interface.

``build_teacher(name)`` -> a ``Teacher``; ``teacher(images_B3HW in [-1, 1])`` -> ``features_BChw`` (float32)
at ``teacher.stride``, ``teacher.feature_dim`` channels, a ``teacher.grid_size`` square grid for an
``teacher.input_size`` input. ``resize_features`` brings a map to the student's grid.
"""

from semtok.teachers.base import Teacher, WeightsChoice, resize_features
from semtok.teachers.clip import OpenClipTeacher
from semtok.teachers.config import ClusterTeacherConfig, TeacherConfig, build_teacher_from_config
from semtok.teachers.convnext import ConvNeXtTeacher
from semtok.teachers.effnet import EfficientNetLiteTeacher, wheel_weights_path
from semtok.teachers.registry import DEFAULT_TEACHER, TEACHERS, TeacherSpec, available_teachers, build_teacher
from semtok.teachers.vit import TimmViTTeacher

__all__ = [
    "DEFAULT_TEACHER",
    "TEACHERS",
    "ClusterTeacherConfig",
    "ConvNeXtTeacher",
    "EfficientNetLiteTeacher",
    "OpenClipTeacher",
    "Teacher",
    "TeacherConfig",
    "TeacherSpec",
    "TimmViTTeacher",
    "WeightsChoice",
    "available_teachers",
    "build_teacher",
    "build_teacher_from_config",
    "resize_features",
    "wheel_weights_path",
]
