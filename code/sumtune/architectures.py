"""The model-family table. Adding a family is adding one row to ``ARCHITECTURES``.

Each row says how sumtune treats a family: seq2seq or causal (summarization) or encoder
(classification), which transformers classes build it, which linear layers LoRA adapts, how an example
is turned into a prompt, and whether unsloth has a real fast path for it. Nothing here imports an ML library: class names are strings that the loader
resolves with ``getattr(transformers, name)``.

Scratch sizes: ``SIZE_PRESETS`` holds family-neutral dimensions; each row's ``scratch_config`` maps
them to the keyword names of that family's transformers config class.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable, Literal

Kind = Literal["seq2seq", "causal", "encoder"]
# what each kind of family is trained for (config key ``task``)
TASK_OF_KIND = {"seq2seq": "summarization", "causal": "summarization", "encoder": "classification"}
PromptStyle = Literal["plain", "prefix", "tldr", "chat"]


@dataclass(frozen=True)
class SizePreset:
    """Dimensions of a from-scratch model (``model.init: scratch``)."""

    d_model: int
    layers: int
    heads: int
    ffn: int


SIZE_PRESETS: dict[str, SizePreset] = {
    "tiny": SizePreset(d_model=64, layers=2, heads=4, ffn=128),
    "small": SizePreset(d_model=256, layers=4, heads=4, ffn=1024),
    # KoBART's published shape (gogamza/kobart-base-v2: BART-base with 16 heads): with model.config and the
    # real tokenizer, a random model the size of the checkpoint, for benchmarks (benchmarks/train_throughput.py)
    "base": SizePreset(d_model=768, layers=6, heads=16, ffn=3072),
}


def _bart_dims(size: SizePreset) -> dict:
    return dict(
        d_model=size.d_model,
        encoder_layers=size.layers,
        decoder_layers=size.layers,
        encoder_attention_heads=size.heads,
        decoder_attention_heads=size.heads,
        encoder_ffn_dim=size.ffn,
        decoder_ffn_dim=size.ffn,
        max_position_embeddings=1024,
    )


def _t5_dims(size: SizePreset) -> dict:
    return dict(
        d_model=size.d_model,
        d_kv=size.d_model // size.heads,
        d_ff=size.ffn,
        num_layers=size.layers,
        num_decoder_layers=size.layers,
        num_heads=size.heads,
    )


def _gpt2_dims(size: SizePreset) -> dict:
    return dict(n_embd=size.d_model, n_layer=size.layers, n_head=size.heads, n_inner=size.ffn, n_positions=1024)


def _llama_dims(size: SizePreset) -> dict:
    return dict(
        hidden_size=size.d_model,
        intermediate_size=size.ffn,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=max(1, size.heads // 2),
        max_position_embeddings=2048,
    )


def _qwen3_dims(size: SizePreset) -> dict:
    return dict(_llama_dims(size), head_dim=size.d_model // size.heads)


def _bert_dims(size: SizePreset) -> dict:
    return dict(hidden_size=size.d_model, num_hidden_layers=size.layers, num_attention_heads=size.heads,
                intermediate_size=size.ffn, max_position_embeddings=512)


def _electra_dims(size: SizePreset) -> dict:  # KoELECTRA-small: embeddings narrower than the hidden size
    return dict(_bert_dims(size), embedding_size=max(size.d_model // 2, 32))


def _roberta_dims(size: SizePreset) -> dict:  # positions start after the padding index: 512 + 2
    return dict(_bert_dims(size), max_position_embeddings=514)


@dataclass(frozen=True)
class Architecture:
    family: str
    kind: Kind
    auto_class: str  # transformers AutoModel class that loads a pretrained checkpoint
    config_class: str  # transformers config class used for ``init: scratch``
    scratch_config: Callable[[SizePreset], dict]
    lora_targets: tuple[str, ...]  # module-name suffixes; ``target_modules: auto`` keeps those present
    prompt_style: PromptStyle
    prefix: str = ""  # prepended to the source text when prompt_style == "prefix"
    unsloth_fast_path: bool = False  # unsloth has optimised kernels for this family
    reference: str = ""  # upstream config this row was checked against
    # special tokens the family's published tokenizer leaves undeclared; set when the loaded tokenizer
    # has none for that role and the token is in its vocabulary (``model.special_tokens_map`` wins)
    tokenizer_specials: tuple[tuple[str, str], ...] = ()
    # transformers class that loads the family's published tokenizer; AutoTokenizer guesses from the
    # checkpoint's config.json and, for KoGPT2 (model_type gpt2, no tokenizer_config.json), guesses GPT-2's
    tokenizer_class: str = "AutoTokenizer"
    # encoder families: the classification head's modules, trained in full and saved with a LoRA adapter
    head_modules: tuple[str, ...] = ()
    position_offset: int = 0  # position ids a family reserves (RoBERTa counts from padding_idx + 1 = 2)
    # ``model_type`` values of a checkpoint's config.json (or of the GGUF it is imported from) that this row
    # reads; ``validate`` refuses a local checkpoint of another type and names the rows that take it
    model_types: tuple[str, ...] = ()
    # chat template for checkpoints that ship none (a base model); the tokenizer's own wins
    chat_template: str = ""

    @property
    def task(self) -> str:
        return TASK_OF_KIND[self.kind]


_ENCODER_LORA = ("query", "value")  # the LoRA paper's choice, and the seed guide's for KoELECTRA
_LLAMA_LORA = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_T5_LORA = ("q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo")
_BART_LORA = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
# SKT-AI's KoBART and KoGPT2 tokenizers: ids 0..6 are <s> </s> <usr> <pad> <sys> <unk> <mask>, none declared.
_SKT_SPECIALS = (("bos_token", "<s>"), ("eos_token", "</s>"), ("unk_token", "<unk>"), ("pad_token", "<pad>"),
                 ("mask_token", "<mask>"))
# KoGPT2's model card loads its tokenizer with bos_token='</s>' (and the rest as above).
_KOGPT2_SPECIALS = (("bos_token", "</s>"),) + _SKT_SPECIALS[1:]

# Gemma's turn format (user and model turns; a system message leads the first user turn, as Gemma has no
# system role). It writes <bos> itself: chat prompts are encoded without the tokenizer's specials.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% set lead = namespace(text='') %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{% set lead.text = message['content'] + '\\n\\n' %}"
    "{% else %}<start_of_turn>{{ 'model' if message['role'] == 'assistant' else 'user' }}\n"
    "{% if message['role'] == 'user' %}{{ lead.text }}{% set lead.text = '' %}{% endif %}"
    "{{ message['content'] }}<end_of_turn>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

ARCHITECTURES: dict[str, Architecture] = {
    row.family: row
    for row in (
        Architecture("bart", "seq2seq", "AutoModelForSeq2SeqLM", "BartConfig", _bart_dims, _BART_LORA, "plain",
                     model_types=("bart",), reference="https://huggingface.co/facebook/bart-base/blob/main/config.json"),
        Architecture("kobart", "seq2seq", "AutoModelForSeq2SeqLM", "BartConfig", _bart_dims, _BART_LORA, "plain",
                     model_types=("bart",), reference="https://huggingface.co/gogamza/kobart-base-v2/blob/main/config.json",
                     tokenizer_specials=_SKT_SPECIALS),
        Architecture("t5", "seq2seq", "AutoModelForSeq2SeqLM", "T5Config", _t5_dims, _T5_LORA, "prefix",
                     prefix="summarize: ", model_types=("t5",), reference="https://huggingface.co/google-t5/t5-base/blob/main/config.json"),
        Architecture("flan-t5", "seq2seq", "AutoModelForSeq2SeqLM", "T5Config", _t5_dims, _T5_LORA, "prefix",
                     prefix="summarize: ", model_types=("t5",), reference="https://huggingface.co/google/flan-t5-base/blob/main/config.json"),
        Architecture("mt5", "seq2seq", "AutoModelForSeq2SeqLM", "MT5Config", _t5_dims, _T5_LORA, "prefix",
                     prefix="summarize: ", model_types=("mt5",), reference="https://huggingface.co/google/mt5-base/blob/main/config.json"),
        Architecture("gpt2", "causal", "AutoModelForCausalLM", "GPT2Config", _gpt2_dims, ("c_attn", "c_proj", "c_fc"),
                     "tldr", model_types=("gpt2",), reference="https://huggingface.co/openai-community/gpt2/blob/main/config.json"),
        Architecture("kogpt2", "causal", "AutoModelForCausalLM", "GPT2Config", _gpt2_dims, ("c_attn", "c_proj", "c_fc"),
                     "tldr", model_types=("gpt2",), reference="https://huggingface.co/skt/kogpt2-base-v2/blob/main/config.json",
                     tokenizer_specials=_KOGPT2_SPECIALS, tokenizer_class="PreTrainedTokenizerFast"),
        Architecture("llama", "causal", "AutoModelForCausalLM", "LlamaConfig", _llama_dims, _LLAMA_LORA, "chat",
                     unsloth_fast_path=True,
                     model_types=("llama",), reference="https://huggingface.co/Bllossom/llama-3.2-Korean-Bllossom-3B/blob/main/config.json"),
        Architecture("qwen2", "causal", "AutoModelForCausalLM", "Qwen2Config", _llama_dims, _LLAMA_LORA, "chat",
                     unsloth_fast_path=True, model_types=("qwen2",), reference="https://huggingface.co/Qwen/Qwen2.5-3B-Instruct/blob/main/config.json"),
        Architecture("qwen3", "causal", "AutoModelForCausalLM", "Qwen3Config", _qwen3_dims, _LLAMA_LORA, "chat",
                     unsloth_fast_path=True, model_types=("qwen3",), reference="https://huggingface.co/Qwen/Qwen3-4B/blob/main/config.json"),
        # Gemma-3: the base checkpoint ships no chat template; GEMMA_CHAT_TEMPLATE writes Gemma's turn format,
        # so the answer ends with <end_of_turn> (id 106), not <eos>. No unsloth fast path until a GPU run proves one.
        Architecture("gemma3", "causal", "AutoModelForCausalLM", "Gemma3TextConfig", _qwen3_dims, _LLAMA_LORA, "chat",
                     model_types=("gemma3_text", "gemma3"), chat_template=GEMMA_CHAT_TEMPLATE,
                     reference="https://huggingface.co/google/gemma-3-270m/blob/main/config.json"),
        # EXAONE 3.5 checkpoints ship remote code (out_proj, c_fc_0/1); from scratch we build the native
        # Exaone4 layout (Llama-style names). ``target_modules: auto`` keeps whichever names exist.
        Architecture("exaone", "causal", "AutoModelForCausalLM", "Exaone4Config", _qwen3_dims,
                     ("q_proj", "k_proj", "v_proj", "o_proj", "out_proj", "c_fc_0", "c_fc_1", "c_proj",
                      "gate_proj", "up_proj", "down_proj"), "chat",
                     model_types=("exaone", "exaone4"), reference="https://huggingface.co/LGAI-EXAONE/EXAONE-3.5-2.4B-Instruct/blob/main/config.json"),
        # Encoders classify: a head on the [CLS] position, trained in full beside LoRA on query/value.
        Architecture("electra", "encoder", "AutoModelForSequenceClassification", "ElectraConfig", _electra_dims,
                     _ENCODER_LORA, "plain", head_modules=("classifier",),
                     model_types=("electra",), reference="https://huggingface.co/monologg/koelectra-small-v3-discriminator/blob/main/config.json"),
        Architecture("bert", "encoder", "AutoModelForSequenceClassification", "BertConfig", _bert_dims,
                     _ENCODER_LORA, "plain", head_modules=("classifier",),
                     model_types=("bert",), reference="https://huggingface.co/beomi/kcbert-base/blob/main/config.json"),
        Architecture("roberta", "encoder", "AutoModelForSequenceClassification", "RobertaConfig", _roberta_dims,
                     _ENCODER_LORA, "plain", head_modules=("classifier",), position_offset=2,
                     model_types=("roberta", "xlm-roberta"), reference="https://huggingface.co/klue/roberta-base/blob/main/config.json"),
    )
}


def get_architecture(family: str) -> Architecture:
    """Exact-key lookup; the error lists every valid key and the nearest match."""
    try:
        return ARCHITECTURES[family]
    except KeyError:
        raise KeyError(unknown_choice_message("architecture", family, ARCHITECTURES)) from None


def unknown_choice_message(what: str, value: str, choices) -> str:
    close = difflib.get_close_matches(str(value), list(choices), n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"unknown {what} '{value}'.{hint} Valid: {', '.join(sorted(choices))}."
