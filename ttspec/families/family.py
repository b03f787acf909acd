"""What one checkpoint family is: everything ttspec knows about one HF `model_type`, in one place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..checkpoints import Rule
from ..frontend.shortform import ShortForm
from .init import HF_INIT, InitRule

if TYPE_CHECKING:
    from .hf_config import Config, Desc


@dataclass(frozen=True)
class Family:
    """One HF model type: the spec's `family NAME`, `import-hf`'s reader and its checkpoint layout."""

    name: str  # HF config.json's `model_type`, and the spec's `family NAME`
    hf_class: str  # the transformers class whose computation the spec reproduces
    rules: tuple[Rule, ...]  # the checkpoint layout: HF tensor names for the spec's labels (ttspec.checkpoints)
    read: Callable[[Config], Desc]  # config.json's fields -> the model, each field checked where it is read
    eps_key: str  # the field that holds the norms' epsilon (where an epsilon ttspec cannot take is reported)
    # refusals of this family's own fields, made after the checks every family shares (GPT-2's attention scaling)
    refuse: Callable[[Config], None] | None = None
    # the config fields that can give the layer count, the one transformers reads first first
    layers_keys: tuple[str, ...] = ("num_hidden_layers",)
    # the lesson's short form, if the family has one: its template (ttspec/stdlib/families/) and optional keys
    short_form: ShortForm | None = None
    # a mixture of experts' second layout: transformers 5's fused 3-D expert tensors (the model's state_dict in
    # memory), beside `rules`, the hub files' one tensor per expert (what save_pretrained writes)
    fused_rules: tuple[Rule, ...] | None = None
    # how a fresh model starts (ttspec/families/init.py): HF's default unless the family's class overrides it
    init: InitRule = HF_INIT
