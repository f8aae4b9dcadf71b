"""The fusion layer and task head that `model.fusion` and `model.fusion_options` name."""

from tfmm.fusion_config import fusion_options
from tfmm.models.heads.task_head import TaskHead


def build_fusion_and_head(config, num_outputs: int) -> tuple:
    """(fusion layer, head) of a `tfmm.config.Config`'s model section.

    Every fusion but "late" feeds one `TaskHead`; "late" passes each modality's vector to its
    own head (`LateFusionHead`), whose logits are averaged over the present modalities.
    """
    model = config.model
    options = fusion_options(model.fusion_options)
    modalities = tuple(config.data.modalities)
    name = model.fusion
    if name == "concat":
        from tfmm.models.fusion.concat_fusion import ConcatFusion
        fusion = ConcatFusion(name="concat_fusion")
    elif name == "attention":
        from tfmm.models.fusion.attention_fusion import AttentionFusion
        fusion = AttentionFusion(num_heads=model.fusion_num_heads,
                                 num_layers=model.fusion_num_layers, dropout=model.dropout,
                                 name="attention_fusion")
    elif name == "cross_attention":
        from tfmm.models.fusion.cross_attention_fusion import CrossAttentionFusion
        fusion = CrossAttentionFusion(
            num_heads=model.fusion_num_heads, num_layers=model.fusion_num_layers,
            dropout=model.dropout, mode=options.cross_attention_mode,
            pooling=options.cross_attention_pooling,
            query_index=modalities.index("text") if "text" in modalities else 0,
            summary_tokens=options.cross_attention_summary_tokens,
            pooled_skip=options.cross_attention_pooled_skip,
            name="cross_attention_fusion")
    elif name == "tensor":
        from tfmm.models.fusion.tensor_fusion import TensorFusion
        fusion = TensorFusion(options.tensor_dim, model.projection_dim, dropout=model.dropout,
                              name="tensor_fusion")
    elif name == "low_rank":
        from tfmm.models.fusion.low_rank_fusion import LowRankFusion
        fusion = LowRankFusion(options.tensor_dim, model.projection_dim, rank=options.rank,
                               name="low_rank_fusion")
    elif name == "gated":
        from tfmm.models.fusion.gated_fusion import GatedFusion
        fusion = GatedFusion(name="gated_fusion")
    elif name == "late":
        from tfmm.models.fusion.late_fusion import LateFusion
        from tfmm.models.heads.late_fusion_head import LateFusionHead
        head = LateFusionHead(config.data.task, num_outputs, len(modalities),
                              hidden_dim=model.head_hidden_dim, dropout=model.dropout,
                              name="task_head")
        return LateFusion(name="late_fusion"), head
    else:
        raise ValueError(f"unknown model.fusion {name!r}")
    head = TaskHead(config.data.task, num_outputs, hidden_dim=model.head_hidden_dim,
                    dropout=model.dropout, name="task_head")
    return fusion, head
