"""One Unicode form for every text sumtune trains on, generates from and scores. Standard library only.

The same Korean sentence can arrive as precomposed syllables (NFC: what most editors and the web write) or
as decomposed jamo (NFD: a file saved on macOS, some web forms). The two look identical, but tokenizers
and ROUGE see different characters: identical summaries, one NFD and one NFC, scored ROUGE-1 0.18. Zero-
width characters and full-width ASCII (``！``, ``（``, ``Ａ``) split or change tokens the same way.

    normalize_text("안녕\u200b하세요！")   # -> "안녕하세요!"

NFC, not NFKC: NFKC would also turn compatibility jamo (``ㅋㅋ``) into conjoining jamo and ``㈜`` into
``(주)``, changing text that is fine. Only the full-width ASCII block is folded.
"""

from __future__ import annotations

import unicodedata

# Characters that take no space and change no meaning in text sumtune reads: zero-width space, non-joiner
# and joiner, word joiner, a byte-order mark inside text, the soft hyphen.
INVISIBLE_CHARACTERS = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
FULL_WIDTH_ASCII = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}  # ！..～ -> !..~
IDEOGRAPHIC_SPACE = {0x3000: " "}
_TRANSLATION = {**dict.fromkeys(map(ord, INVISIBLE_CHARACTERS)), **FULL_WIDTH_ASCII, **IDEOGRAPHIC_SPACE}

# What run.json records as ``text_normalization`` (train) and what docs/reliability.md describes.
DESCRIPTION = "NFC; zero-width characters and soft hyphens removed; full-width ASCII and U+3000 folded to ASCII"


def normalize_text(text: str) -> str:
    """``text`` in NFC without invisible characters, full-width ASCII folded (see the module's docstring)."""
    return unicodedata.normalize("NFC", text.translate(_TRANSLATION))
