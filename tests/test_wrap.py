"""A model object a notebook or a Trainer holds, wrapped in place (`wrap_model`), run in eval mode
for one call (`eval_mode`) and handed back as it was found."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from classifier.load.models import ModelLoadError, check_attention_hooks, eval_mode, load_model, wrap_model
from classifier.measure.scorer import each_layer_pattern

pytestmark = pytest.mark.slow

DEV_4L = Path(__file__).resolve().parents[1] / "devmodels" / "tinystories-4L-dev"
TOKENS = torch.tensor([[1, 50, 60, 70, 80]])


def hugging_face_model():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(DEV_4L), AutoTokenizer.from_pretrained(DEV_4L)


def patterns(model):
    seen = []
    each_layer_pattern(model, TOKENS, lambda layer, pattern: seen.append(pattern.clone()))
    return torch.stack(seen)


def test_a_hugging_face_model_in_training_is_wrapped_without_a_copy_and_handed_back_as_found():
    model, tokenizer = hugging_face_model()
    model.train()
    embedding = model.model.embed_tokens.weight.data_ptr()
    loaded = wrap_model(model, tokenizer=tokenizer, name="mine")
    assert (loaded.name, loaded.n_layers, loaded.n_heads, loaded.bos_token_id, loaded.device) == ("mine", 4, 8, 1, "cpu")
    assert loaded.bridge.original_model is model
    assert model.model.embed_tokens.weight.data_ptr() == embedding  # the same weights, not a copy
    assert model.config._attn_implementation == "sdpa"  # as from_pretrained left it
    with eval_mode(loaded):
        assert not model.training and not torch.is_grad_enabled()
        assert model.config._attn_implementation == "eager"
        wrapped = patterns(loaded)
    assert model.training and all(module.training for module in model.modules())
    assert torch.is_grad_enabled() and model.config._attn_implementation == "sdpa"
    # The same patterns as the checkpoint loaded from its folder, the path `head-roles report` takes.
    assert torch.allclose(wrapped, patterns(load_model(str(DEV_4L), device="cpu")), atol=1e-6)


def test_eval_mode_restores_the_model_when_the_call_fails():
    model, tokenizer = hugging_face_model()
    model.train()
    loaded = wrap_model(model, tokenizer=tokenizer)
    with pytest.raises(KeyError), eval_mode(loaded):
        raise KeyError("boom")
    assert model.training and model.config._attn_implementation == "sdpa"


def test_a_booted_bridge_keeps_its_tokenizer_and_takes_its_name_from_the_checkpoint():
    from transformer_lens.model_bridge import TransformerBridge

    bridge = TransformerBridge.boot_transformers(str(DEV_4L), device="cpu")
    loaded = wrap_model(bridge)
    assert loaded.bridge is bridge and loaded.tokenizer is bridge.tokenizer
    assert loaded.name == str(DEV_4L)


def test_bad_model_objects_are_one_line_errors():
    model, tokenizer = hugging_face_model()
    with pytest.raises(ModelLoadError, match=r"^model: a LlamaForCausalLM needs its tokenizer; pass tokenizer="):
        wrap_model(model)
    with pytest.raises(ModelLoadError, match=r"^model: a dict is neither a TransformerBridge nor"):
        wrap_model({"weights": 1})
    no_bos = SimpleNamespace(bos_token_id=None)
    with pytest.raises(ModelLoadError, match=r"^model: the tokenizer has no BOS token"):
        wrap_model(model, tokenizer=no_bos)


def test_a_bridge_without_attention_pattern_hooks_is_refused():
    bridge = SimpleNamespace(cfg=SimpleNamespace(n_layers=3), hook_dict={"blocks.0.attn.hook_pattern": None})
    with pytest.raises(ModelLoadError, match=r"^model: no attention-pattern hook \(blocks.1.attn.hook_pattern\) in 2 of 3 layers"):
        check_attention_hooks(bridge, "model")
