"""Procedural synthetic indoor scenes with ten Taskonomy-style labels (docs/design.md; the synthetic benchmarks in the README).

``render(seed, split, indices, resolution, tasks)`` is the entry point; ``render_scenes`` renders
explicit :class:`Scene` descriptions and ``sample_scene`` draws the random ones. See
:mod:`lhl.data.synthetic.renderer` (camera, rendering), :mod:`lhl.data.synthetic.scene`
(world frame, scene sampling) and :mod:`lhl.data.synthetic.labels` (the conventions of every label).
"""

from lhl.data.synthetic.labels import LABEL_CHANNELS, LABEL_FUNCTIONS, SYNTHETIC_TASKS, Geometry
from lhl.data.synthetic.renderer import render, render_scenes
from lhl.data.synthetic.scene import (CLASS_NAMES, NUM_CLASSES, SHAPE_KINDS, TEXTURE_KINDS, Camera,
                                      Light, Scene, SceneObject, Texture, sample_scene)

__all__ = ["CLASS_NAMES", "Camera", "Geometry", "LABEL_CHANNELS", "LABEL_FUNCTIONS", "Light",
           "NUM_CLASSES", "SHAPE_KINDS", "SYNTHETIC_TASKS", "Scene", "SceneObject", "TEXTURE_KINDS",
           "Texture", "render", "render_scenes", "sample_scene"]
