"""A family is one module of ttspec/families: the registry is the only list of families, the elaborator
gets their names from its caller (the IR never imports checkpoints or families), and a family added to
the registry is imported, named in specs and given its checkpoint names with no other change."""

import json

import networkx as nx
import pytest

from ttspec.driver import load_model
from ttspec.elaborate import elaborate
from ttspec.errors import ArchError
from ttspec.families import FAMILIES, Family, check_family_labels, plan_for
from ttspec.families.llama_like import LLAMA_RULES, LlamaLike
from ttspec.frontend.parser import parse_source
from ttspec.importers.hf import import_hf

from .conftest import ROOT
from .test_structure import import_graph

ABOVE_FAMILIES = ("ttspec.importers", "ttspec.driver", "ttspec.backends", "ttspec.runtime", "ttspec.reports",
                  "ttspec.cli", "ttspec.analysis", "ttspec.passes")


def test_the_elaborator_never_reaches_checkpoints_or_families():
    graph = import_graph()
    elaborator = [m for m in graph if m.startswith("ttspec.elaborate")]
    assert "ttspec.elaborate.statements" in elaborator
    for module in elaborator:
        for below_it in ("ttspec.checkpoints", "ttspec.families"):
            assert below_it not in graph or not nx.has_path(graph, module, below_it), (module, below_it)


def test_families_import_nothing_above_them():
    graph = import_graph()
    for module in (m for m in graph if m.startswith("ttspec.families")):
        above = [t for t in graph.successors(module) if t.startswith(ABOVE_FAMILIES)]
        assert not above, (module, above)


def test_the_registry_is_the_thirteen_hf_model_types():
    assert list(FAMILIES) == ["llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi", "phi3", "gpt2",
                             "mixtral", "qwen2_moe", "qwen3_moe", "olmoe"]
    assert {f.hf_class for f in FAMILIES.values()} == {
        "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "GemmaForCausalLM",
        "Gemma2ForCausalLM", "PhiForCausalLM", "Phi3ForCausalLM", "GPT2LMHeadModel", "MixtralForCausalLM",
        "Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM", "OlmoeForCausalLM"}


def test_each_short_form_template_belongs_to_its_family():
    templates = sorted(p.name for p in (ROOT / "ttspec" / "stdlib" / "families").glob("*.arch"))
    claimed = sorted(f.short_form.template for f in FAMILIES.values() if f.short_form)
    assert claimed == templates == ["gpt2.arch", "llama.arch"]
    assert all(f.short_form.template == f"{f.name}.arch" for f in FAMILIES.values() if f.short_form)


SPEC = """model m
family {family}
input tokens: int32[batch, seq] where seq <= 16
h = token_embedding(tokens, 32, 8) as embedding
output logits = lm_head(h, 32)
"""


def test_the_elaborator_checks_family_names_against_what_its_caller_passes(tmp_path):
    module = parse_source(SPEC.format(family="gpt2"), str(tmp_path / "m.arch"))
    assert elaborate(module, tmp_path, ("llama", "gpt2")).family == "gpt2"
    with pytest.raises(ArchError) as refused:
        elaborate(module, tmp_path, ("llama", "mistral"))
    d = refused.value.diagnostic
    assert d.message == "unknown checkpoint family `gpt2`"
    assert (d.loc.line, d.loc.col) == (2, 8)  # the name after `family `
    assert d.hint == "families: llama, mistral"


CONFIG = {"model_type": "toy", "architectures": ["ToyForCausalLM"], "vocab_size": 64, "hidden_size": 32,
          "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
          "max_position_embeddings": 32, "rms_norm_eps": 1e-5, "rope_theta": 10000.0}


def test_a_family_added_to_the_registry_is_imported_named_and_loaded(tmp_path, monkeypatch):
    reader = LlamaLike("toy", "ToyForCausalLM", dict(kv=None, head_dim=None, act="silu", eps=1e-6, tied=False))
    monkeypatch.setitem(FAMILIES, "toy", Family("toy", "ToyForCausalLM", LLAMA_RULES, reader.read, "rms_norm_eps"))
    folder = tmp_path / "toy-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(CONFIG))
    imported = import_hf(folder)
    assert (imported.family, imported.hf_class) == ("toy", "ToyForCausalLM")
    assert "\nfamily toy " in imported.text
    spec = tmp_path / "toy.arch"
    spec.write_text(imported.text)
    model = load_model(spec)
    check_family_labels(model)
    # Llama's layout, as the new module declared: per layer 2 norms, q, k, v, o, gate, up, down; then the
    # embedding, the final norm and the head
    names = [t.name for t in plan_for(model)]
    assert len(names) == 2 * 9 + 3
    assert "model.layers.1.self_attn.k_proj.weight" in names and "lm_head.weight" in names
