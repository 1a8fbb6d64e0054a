"""Prompts of the CoLLM family and their tokenisation with soft-token slots.

The text prompt (TALLRec) and the ID prompt (CoLLM, GraphLoRA) differ only by the feature
sentences; ``<UserID>`` / ``<TargetItemID>`` become *slots*: one token position each whose
input embedding a method replaces (soft tokens), or text a method writes in (BinLLM's bits).
Only the history is ever truncated (oldest titles first): the question and the answer cue
stay whole.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Mapping, Sequence

USER_SLOT, ITEM_SLOT = "<UserID>", "<TargetItemID>"
SLOT_KINDS = {USER_SLOT: "user", ITEM_SLOT: "item"}
_SLOT_RE = re.compile(f"({re.escape(USER_SLOT)}|{re.escape(ITEM_SLOT)})")

WORDS = {"movie": ("movie", "movies"), "book": ("book", "books")}


def words(domain: str) -> tuple[str, str]:
    """(noun, plural) of a Split's domain: a known one, or a declared dataset's ``noun`` /
    ``noun/plural`` (``bench/data/declared.py``), so a new domain needs no code here."""
    if domain in WORDS:
        return WORDS[domain]
    noun, _, plural = domain.partition("/")
    return noun, plural or noun + "s"
EMPTY_HISTORY = "none"

TEXT_TEMPLATE = (
    '#Question: A user has given high ratings to the following {items}: {history}. '
    'Leverage the information to predict whether the user would enjoy the {item} titled {target}? '
    'Answer with "Yes" or "No". \n#Answer:'
)
ID_TEMPLATE = (
    '#Question: A user has given high ratings to the following {items}: {history}. '
    "Additionally, we have information about the user's preferences encoded in the feature "
    f"{USER_SLOT}. Using all available information, make a prediction about whether the user "
    f"would enjoy the {{item}} titled {{target}} with the feature {ITEM_SLOT}? "
    'Answer with "Yes" or "No". \n#Answer:'
)
TEMPLATES = {"text": TEXT_TEMPLATE, "id": ID_TEMPLATE}


def register_template(kind: str, template: str) -> str:
    """Add a prompt kind (a method's own template, with the same ``{items}`` / ``{item}`` /
    ``{history}`` / ``{target}`` fields and any number of slots); registering the same text
    twice is a no-op, another text under a taken kind an error. Returns ``kind``."""
    known = TEMPLATES.get(kind)
    if known is not None and known != template:
        raise ValueError(f"prompt kind {kind!r} is already registered with another template")
    TEMPLATES[kind] = template
    return kind


@dataclasses.dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    slots: list[tuple[int, str]]  # (token position, "user" | "item")
    n_history: int  # titles kept after truncation


def _quoted(titles: Sequence[str]) -> str:
    return ", ".join(f'"{t}"' for t in titles) if titles else EMPTY_HISTORY


def render(template: str, domain: str, history_titles: Sequence[str], target: str,
           disliked_titles: Sequence[str] | None = None) -> str:
    """The prompt text. Datasets that also record disliked items (Book-Crossing in TALLRec's
    few-shot protocol: rated books split into liked / disliked) get them after the liked list."""
    item, items = words(domain)
    hist = _quoted(history_titles)
    if disliked_titles is not None:
        hist += f", and low ratings to the following {items}: {_quoted(disliked_titles)}"
    return template.format(items=items, item=item, history=hist, target=f'"{target}"')


class PromptBuilder:
    """Builds and tokenises prompts; slots map to positions (or to text via ``slot_text``)."""

    def __init__(self, tokenizer, kind: str = "text", domain: str = "movie", history_len: int = 10,
                 max_len: int = 1024) -> None:
        if kind not in TEMPLATES:
            raise ValueError(f"prompt kind {kind!r} not in {sorted(TEMPLATES)}")
        self.tok, self.template, self.domain = tokenizer, TEMPLATES[kind], domain
        self.history_len, self.max_len = history_len, max_len
        self.prefix = tokenizer("").input_ids  # what the tokenizer adds itself (e.g. BOS)
        self.slot_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def _encode_text(self, text: str, slot_text: Mapping[str, str] | None) -> tuple[list[int], list[tuple[int, str]]]:
        ids, slots = list(self.prefix), []
        for piece in _SLOT_RE.split(text):
            if not piece:
                continue
            if piece in SLOT_KINDS:
                if slot_text and piece in slot_text:  # written into the prompt as text
                    ids += self.tok.encode(slot_text[piece], add_special_tokens=False)
                else:  # one position whose embedding the method supplies
                    slots.append((len(ids), SLOT_KINDS[piece]))
                    ids.append(self.slot_id)
            else:
                ids += self.tok.encode(piece, add_special_tokens=False)
        return ids, slots

    def encode(self, history_titles: Sequence[str], target: str,
               slot_text: Mapping[str, str] | None = None, disliked_titles: Sequence[str] | None = None) -> Encoded:
        titles = list(history_titles)[-self.history_len:] if self.history_len > 0 else []
        disliked = None if disliked_titles is None else (
            list(disliked_titles)[-self.history_len:] if self.history_len > 0 else [])
        while True:
            ids, slots = self._encode_text(render(self.template, self.domain, titles, target, disliked), slot_text)
            if len(ids) <= self.max_len or not (titles or disliked):
                break
            # drop the oldest title of the longer list, never the question or the answer cue
            if disliked and len(disliked) > len(titles):
                disliked = disliked[1:]
            else:
                titles = titles[1:]
        if len(ids) > self.max_len:
            raise ValueError(f"prompt needs {len(ids)} tokens even without history; max_len={self.max_len} is too small")
        return Encoded(ids, slots, len(titles))
