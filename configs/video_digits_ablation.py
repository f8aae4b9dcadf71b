"""Video-digits QA ablation: `python train.py configs/video_digits_ablation.py`.

Runs the recipe's stages (configs/video_digits.py; a stage whose run folder holds its final
checkpoint is only re-evaluated), then the same fused recipe on subsets of the modalities, on the
same test split, and prints one table with the accuracy per question type: the fused model
against each single modality.
"""

import importlib.util
import os

_spec = importlib.util.spec_from_file_location(
    "video_digits_recipe",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "video_digits.py"))
recipe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recipe)


def get_config():
    subsets = [("video_only", ("video",)), ("text_only", ("text",)), ("audio_only", ("audio",))]
    return recipe.get_config() + [recipe.fused_stage(name, modalities, export=False)
                                  for name, modalities in subsets]
