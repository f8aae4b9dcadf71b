"""AV-digits QA ablation: `python train.py configs/av_digits_ablation.py`.

Runs the quickstart's stages (reusing finished run folders: a stage whose run folder holds its
final checkpoint is only re-evaluated) and then the same fused recipe on every subset of the
modalities, on the same test split, and prints one table: each encoder's own digit accuracy (the
ceiling the fusion works under), the fused model, text+image, text+audio, image+audio and each
single modality, with the accuracy per question type.
"""

import importlib.util
import os

_spec = importlib.util.spec_from_file_location(
    "av_digits_recipe", os.path.join(os.path.dirname(os.path.abspath(__file__)), "av_digits.py"))
recipe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recipe)


def get_config():
    subsets = [("text_image", ("text", "image")), ("text_audio", ("text", "audio")),
               ("image_audio", ("image", "audio")), ("text_only", ("text",)),
               ("image_only", ("image",)), ("audio_only", ("audio",))]
    return recipe.get_config() + [recipe.fused_stage(name, modalities, export=False)
                                  for name, modalities in subsets]
