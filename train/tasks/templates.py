"""Prompt templates: how a task's question becomes the prompt, and the answer layout the prompt asks for.

`data.prompt_template` names one of three, or is your own text with a `{question}` placeholder:

- `r1_zero`: plain text, the DeepSeek-R1-Zero template (DeepSeek-AI 2025, table 1). It ends at "Assistant:",
  not at "Assistant: <think>", so the completion writes its own `<think>` tag and the format rewards see the
  whole layout.
- `xml_reasoning`: a chat, [system, user], with the system prompt of willccbb's GSM8K GRPO demo; the answer
  layout is `<reasoning>\\n...\\n</reasoning>\\n<answer>\\n...\\n</answer>\\n`.
- `chat`: a chat, [system, user], rendered by the tokenizer's chat template; the system prompt is
  `data.system_prompt`, by default one asking for the think/answer layout; the user message is
  `data.user_template` (by default the question alone).
- your own text, e.g. "{question}\\n" for the built-in char-level model: plain text, think/answer layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from train.config import DataConfig
from train.errors import UserError
from train.models.generation import Prompt

R1_ZERO_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the answer. "
    "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>.\n"
    "User: {question}\n"
    "Assistant:"
)
XML_REASONING_SYSTEM_PROMPT = (
    "Respond in the following format:\n<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>"
)
CHAT_SYSTEM_PROMPT = (
    "You are a helpful assistant. First think through the problem step by step inside <think> </think> tags, "
    "then give only the final answer inside <answer> </answer> tags."
)
NAMED_TEMPLATES = ("r1_zero", "xml_reasoning", "chat")


@dataclass(frozen=True)
class PromptTemplate:
    """A rendering rule: text with `{question}`, or a system prompt for a [system, user] chat."""

    name: str  # r1_zero, xml_reasoning, chat, or custom
    text: str | None  # the text template, for plain-text prompts
    system_prompt: str | None  # the system message, for chat prompts
    reasoning_tag: Literal["think", "reasoning"]
    user_text: str = "{question}"  # the user message of a chat prompt

    @property
    def stop_strings(self) -> tuple[str, ...]:
        """Where a completion in this template's layout is over: right after its closing answer tag, when the prompt
        asks for one (the GSM8K demo's layout ends with a newline after it, which its strict rewards require).
        Generation stops there, the tag kept, instead of running on into imagined next turns."""
        instructions = self.system_prompt or self.text or ""
        if "</answer>" not in instructions:
            return ()
        return ("</answer>\n",) if self.reasoning_tag == "reasoning" else ("</answer>",)

    def render(self, question: str) -> Prompt:
        if self.system_prompt is not None:
            user = self.user_text.replace("{question}", question)
            return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": user}]
        # str.replace, not str.format: templates may hold other braces (\\boxed{}, JSON examples).
        return self.text.replace("{question}", question)

    def completion(self, reasoning: str, answer: str) -> str:
        """A completion in this template's answer layout (the tiny model's warm start learns from these).

        The think layout is compact, `<think>...</think><answer>...</answer>`, so a char-level model learns it in
        few tokens; the xml layout is the GSM8K demo's, newlines included, as its strict rewards require.
        """
        if self.reasoning_tag == "reasoning":
            return f"<reasoning>\n{reasoning}\n</reasoning>\n<answer>\n{answer}\n</answer>\n"
        return f"<think>{reasoning}</think><answer>{answer}</answer>"


def prompt_template(data: DataConfig) -> PromptTemplate:
    """The template `data.prompt_template` names; a UserError for a template without `{question}`."""
    name = data.prompt_template
    if data.system_prompt is not None and name not in ("chat", "xml_reasoning"):
        raise UserError(
            f"data.system_prompt is set but data.prompt_template is {name!r}, a plain-text template that has no "
            "system message. Use prompt_template: chat (or xml_reasoning) for a system prompt, or remove "
            "data.system_prompt and write the instructions into the template text."
        )
    chat = name in ("chat", "xml_reasoning")
    if data.user_template != "{question}" and not chat:
        raise UserError(
            f"data.user_template is set but data.prompt_template is {name!r}, a plain-text template that has no user "
            "message. Use prompt_template: chat (or xml_reasoning), or write the text into the template itself."
        )
    if "{question}" not in data.user_template:
        raise UserError(
            f"data.user_template {data.user_template!r} has no {{question}} placeholder, so the prompt would not hold "
            "the question. Write it where the question goes, e.g. '{question}\\nAnswer in <answer> </answer> tags.'"
        )
    if name == "r1_zero":
        return PromptTemplate("r1_zero", R1_ZERO_TEMPLATE, None, "think")
    if name == "xml_reasoning":
        system = data.system_prompt or XML_REASONING_SYSTEM_PROMPT
        return PromptTemplate("xml_reasoning", None, system, "reasoning", data.user_template)
    if name == "chat":
        return PromptTemplate("chat", None, data.system_prompt or CHAT_SYSTEM_PROMPT, "think", data.user_template)
    if "{question}" not in name:
        raise UserError(
            f"data.prompt_template {name!r} is neither a template name ({', '.join(NAMED_TEMPLATES)}) nor a text "
            "with a {question} placeholder. Use one of the names, or write your own text such as "
            "'Question: {question}\\nAnswer:'."
        )
    return PromptTemplate("custom", name, None, "think")
