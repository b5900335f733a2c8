"""Tiny GGUF checkpoints written with the ``gguf`` package's writer, for the import's fast tests.

``write_tiny_llama(path)`` writes a 2-layer random Llama the way llama.cpp's converter lays one out
(token_embd / blk.N.* names, Q and K rows permuted for its rotary layout, 2-D weights as Q8_0) with a
byte-level BPE tokenizer trained on the bundled sample data, ChatML tokens and template; it returns the
transformers model whose weights are what the file holds once dequantized, to compare an import with.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import transformers

REPO = Path(__file__).resolve().parents[1]
CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2 as in SmolLM2


def byte_level_vocabulary(size: int = 400) -> tuple[list[str], list[str]]:
    """(tokens, merges) of a byte-level BPE trained on the sample dialogues, specials first."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from sumtune.records import read_records

    texts = [row[key] for row in read_records(REPO / "data" / "sample" / "en_train.csv") for key in ("dialogue", "summary")]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer=trainer)
    model = json.loads(tokenizer.to_str())["model"]
    tokens = [token for token, _ in sorted(model["vocab"].items(), key=lambda item: item[1])]
    merges = [" ".join(merge) if isinstance(merge, list) else merge for merge in model["merges"]]
    return tokens, merges


def _permute_for_gguf(weight: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's converter reorders Q and K rows for its rotary layout; transformers undoes it on load."""
    rows = weight.shape[0]
    return weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _unpermute(weight: np.ndarray, heads: int) -> np.ndarray:
    rows = weight.shape[0]
    return weight.reshape(heads, rows // heads // 2, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def write_tiny_llama(path: Path, architecture: str = "llama", quantize: bool = True, truncate_to: int | None = None):
    import gguf

    tokens, merges = byte_level_vocabulary()
    config = transformers.LlamaConfig(vocab_size=len(tokens), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                      rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
                                      pad_token_id=2)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_context_length(256)
    writer.add_embedding_length(64)
    writer.add_block_count(2)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if t in SPECIALS else gguf.TokenType.NORMAL for t in tokens])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(2)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHATML)
    names = {"embed_tokens": "token_embd", "norm": "output_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate",
             "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
             "post_attention_layernorm": "ffn_norm"}
    expected = {}
    heads = {"attn_q.weight": 4, "attn_k.weight": 2}
    for name, tensor in model.model.state_dict().items():
        parts = name.split(".")
        key = (f"blk.{parts[1]}.{names['.'.join(parts[2:-1])]}.weight" if parts[0] == "layers"
               else f"{names[parts[0]]}.weight")
        head_count = next((n for suffix, n in heads.items() if key.endswith(suffix)), None)
        stored = tensor.numpy().astype(np.float32)
        if head_count:
            stored = _permute_for_gguf(stored, head_count)
        if quantize and stored.ndim == 2:
            packed = gguf.quants.quantize(stored, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(key, packed, raw_shape=packed.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            stored = gguf.quants.dequantize(packed, gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(key, stored)
        expected[name] = torch.from_numpy(_unpermute(stored, head_count) if head_count else stored)
    model.model.load_state_dict(expected)  # the reference: what the file holds, in transformers' layout
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    if truncate_to is not None:
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[:truncate_to])
    return model, tokens
