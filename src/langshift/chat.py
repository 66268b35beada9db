"""`langshift chat MODEL`: talk to a model in the format it was trained and evaluated in.

Each turn renders the whole conversation with the tokenizer's chat template (the plain
`models.PLAIN_PROMPT` when there is none), encodes it as `eval/generate.py` encodes a prompt, and
decodes with our own loop (`eval/decode.py`) -- the code that produced the evaluation's responses, so
a one-turn chat is asked exactly as the evaluation asks. Tokens are printed as they are decoded.

    >>> Habari yako?          a message; the reply streams in
    >>> /system Jibu kwa Kiswahili.    a system message (the history is kept)
    >>> /lang                 the language of the last reply, by the fidelity detector
    >>> /reset                forget the conversation
    Ctrl-C                    stops a reply (what was said stays in the history); Ctrl-D or /exit leaves

`--compare MODEL_B` asks two models the same thing; each keeps its own history and the replies are
shown side by side. `--prompt TEXT` answers once and exits.

When the conversation outgrows the model's context, the oldest turns are left out of the prompt
(the system message never is) so that the reply keeps room (`--max-new-tokens`, at most half the
context); a single message that alone is too long keeps its end, as training keeps the end of a
too-long prompt. A reply never runs past the context.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from langshift.eval.decode import prefill, sample
from langshift.eval.generate import _cut, _stop_ids, encode_prompt
from langshift.files import stable_hash
from langshift.models import PLAIN_PROMPT, ChatFormat, chat_format


@dataclass(frozen=True)
class Sampling:
    """How replies are drawn: the evaluation's defaults (paper App. B); temperature 0 is greedy."""

    temperature: float = 0.6
    top_p: float = 0.9
    max_new_tokens: int = 256
    seed: int = 0


def render(tokenizer, fmt: ChatFormat, messages: list[dict]) -> str:
    """Prompt text for a conversation that ends with a user message.

    With a chat template: the template over all messages, with the generation prompt. Without one:
    each past turn as training writes it, `PLAIN_PROMPT(user) + reply + end`, then the last user
    message's `PLAIN_PROMPT` (the plain format has no system slot, as in training)."""
    if fmt.template is not None:
        return tokenizer.apply_chat_template(messages, chat_template=fmt.template, tokenize=False,
                                             add_generation_prompt=True)
    text = ""
    for m in messages:
        if m["role"] == "user":
            text += PLAIN_PROMPT.format(prompt=m["content"])
        elif m["role"] == "assistant":
            text += m["content"] + fmt.end
    return text


def held_back(text: str, end: str) -> str:
    """The part of a reply decoded so far that is safe to print: without a trailing incomplete
    UTF-8 character (decoded as U+FFFD) and without a tail that may be the start of `end`."""
    text = text.rstrip("\ufffd")
    for k in range(min(len(end) - 1, len(text)), 0, -1):
        if text.endswith(end[:k]):
            return text[:-k]
    return text


class Stream:
    """Turns a growing list of reply tokens into the new text to print at each step."""

    def __init__(self, tokenizer, end: str):
        self.tokenizer, self.end, self.shown = tokenizer, end, ""

    def text(self, tokens: list[int]) -> str:
        """The reply as `generate` would record it: decoded, cut at the turn end, stripped."""
        return _cut(self.tokenizer.decode(tokens, skip_special_tokens=True), self.end)

    def feed(self, tokens: list[int]) -> str:
        full = self.tokenizer.decode(tokens, skip_special_tokens=True)
        if self.end and self.end in full:
            full = full[: full.index(self.end)]
        safe = held_back(full.lstrip(), self.end)
        if not safe.startswith(self.shown):  # a later token changed how earlier ones decode: wait
            return ""
        new, self.shown = safe[len(self.shown):], safe
        return new

    def rest(self, tokens: list[int]) -> str:
        """What is left to print once the reply is finished."""
        final = self.text(tokens)
        return final[len(self.shown):] if final.startswith(self.shown) else ""


@dataclass
class Reply:
    text: str
    tokens: list[int]
    interrupted: bool = False
    dropped_turns: int = 0


@dataclass
class Bot:
    """One model in a conversation: its own history, rendered and decoded as the evaluation does."""

    name: str
    model: object
    tokenizer: object
    system: str | None = None
    history: list[dict] = field(default_factory=list)  # user/assistant messages, oldest first

    def __post_init__(self):
        self.fmt = chat_format(self.tokenizer)
        self.stop = _stop_ids(self.model, self.tokenizer, self.fmt.end)
        end_ids = self.tokenizer(self.fmt.end, add_special_tokens=False).input_ids if self.fmt.end else []
        self.end_tokens = len(end_ids)
        self.context = getattr(self.model.config, "max_position_embeddings", None)

    @property
    def has_system_slot(self) -> bool:
        return self.fmt.template is not None

    def messages(self, turns: list[dict]) -> list[dict]:
        system = [{"role": "system", "content": self.system}] if self.system and self.has_system_slot else []
        return system + turns

    def prompt_ids(self, user: str, max_new_tokens: int) -> tuple[list[int], int]:
        """Token ids of the conversation plus `user`, and how many old turns had to be left out."""
        turns = [*self.history, {"role": "user", "content": user}]
        # room for the reply: what was asked for, but never more than half the context
        budget = (self.context - min(max_new_tokens, self.context // 2)) if self.context else None
        dropped = 0
        while True:
            ids = encode_prompt(self.tokenizer, render(self.tokenizer, self.fmt, self.messages(turns)))
            if budget is None or len(ids) <= budget or len(turns) == 1:
                break
            turns, dropped = turns[2:], dropped + 1  # the oldest user message and its reply
        if budget is not None and len(ids) > budget:
            ids = ids[-max(1, budget):]
        return ids, dropped

    def reply(self, user: str, sampling: Sampling, on_text: Callable[[str], None] | None = None) -> Reply:
        """Answer `user`, calling `on_text` with each new piece of text. Ctrl-C stops the reply; what
        was said by then is kept (in the history too) and the reply is marked interrupted."""
        ids, dropped = self.prompt_ids(user, sampling.max_new_tokens)
        stream = Stream(self.tokenizer, self.fmt.end)
        tokens: list[int] = []

        def on_token(_row: int, so_far: list[int]) -> None:
            tokens[:] = so_far
            if on_text is not None and (piece := stream.feed(so_far)):
                on_text(piece)

        def ends_turn(so_far: list[int]) -> bool:  # a turn end spelled in several tokens
            return self.fmt.end in self.tokenizer.decode(so_far[-(self.end_tokens + 2):], skip_special_tokens=False)

        turn = len(self.history) // 2
        torch.manual_seed(int(stable_hash(sampling.seed, turn, user), 16) % 2**63)
        interrupted = False
        self.model.eval()
        try:
            input_ids = torch.tensor([ids], device=self.model.device)
            prefix = prefill(self.model, input_ids, torch.ones_like(input_ids))
            room = self.context - len(ids) if self.context else sampling.max_new_tokens
            sample(self.model, prefix, max_new_tokens=min(sampling.max_new_tokens, room), stop_ids=self.stop,
                   temperature=sampling.temperature, top_p=sampling.top_p,
                   stop_text=ends_turn if self.end_tokens > 1 else None, on_token=on_token)
        except KeyboardInterrupt:
            interrupted = True
        if on_text is not None and (rest := stream.rest(tokens)):
            on_text(rest)
        text = stream.text(tokens)
        if text or not interrupted:  # a reply stopped before its first word leaves no turn behind
            self.history += [{"role": "user", "content": user}, {"role": "assistant", "content": text}]
        return Reply(text, list(tokens), interrupted, dropped)

    def last_reply(self) -> str | None:
        return self.history[-1]["content"] if self.history else None

    def reset(self) -> None:
        self.history.clear()


# ----------------------------------------------------------------------------------------- display


def describe_language(text: str | None) -> str:
    """`/lang`: the language of `text` by the fidelity detector, among the registry's languages."""
    from langshift.eval.langid import detect
    from langshift.languages import get_language

    if not text:
        return "no reply yet"
    code = detect(text)
    return f"{code} ({get_language(code).name})" if code else "undetermined (no letters, or the detector cannot decide)"


def side_by_side(columns: list[tuple[str, str]], out) -> None:
    """Two (or more) replies in columns, titled by model."""
    from rich.console import Console

    Console(file=out, soft_wrap=False).print(_table(columns))


def _table(columns: list[tuple[str, str]]):
    from rich.table import Table

    table = Table(expand=True, show_lines=False)
    for title, _ in columns:
        table.add_column(title, ratio=1, overflow="fold")
    table.add_row(*(text for _, text in columns))
    return table


# ------------------------------------------------------------------------------------------- session


class Session:
    """The REPL (or one `--prompt`) over one model, or two side by side."""

    PROMPT = ">>> "

    def __init__(self, bots: list[Bot], sampling: Sampling, out=None):
        self.bots, self.sampling = bots, sampling
        self.out = out or sys.stdout

    def say(self, text: str = "", end: str = "\n") -> None:
        self.out.write(text + end)
        self.out.flush()

    def ask(self, user: str) -> list[Reply]:
        if len(self.bots) == 1:
            reply = self.bots[0].reply(user, self.sampling, on_text=lambda piece: self.say(piece, end=""))
            self.say(" [stopped]" if reply.interrupted else "")
            self._note_dropped([reply])
            return [reply]
        return self._ask_all(user)

    def _ask_all(self, user: str) -> list[Reply]:
        """Each model in turn, its reply filling its column as it streams (a terminal redraws it)."""
        from rich.console import Console
        from rich.live import Live

        texts = {bot.name: "" for bot in self.bots}
        replies: list[Reply] = []
        console = Console(file=self.out)
        with Live(_table(list(texts.items())), console=console, refresh_per_second=8) as live:
            for bot in self.bots:
                def grow(piece: str, name=bot.name) -> None:
                    texts[name] += piece
                    live.update(_table(list(texts.items())))

                reply = bot.reply(user, self.sampling, on_text=grow)
                texts[bot.name] = reply.text + (" [stopped]" if reply.interrupted else "")
                live.update(_table(list(texts.items())))
                replies.append(reply)
                if reply.interrupted:  # Ctrl-C stops the whole turn, not just one column
                    break
        if not console.is_terminal:  # a terminal's Live leaves the cursor on a fresh line; a file does not
            self.say()
        self._note_dropped(replies)
        return replies

    def _note_dropped(self, replies: list[Reply]) -> None:
        dropped = max(r.dropped_turns for r in replies)
        if dropped:
            self.say(f"(the {dropped} oldest turn(s) no longer fit the model's context and were left out)")

    # commands: name -> (handler(session, argument) -> keep going?, help)
    def cmd_reset(self, _arg: str) -> bool:
        for bot in self.bots:
            bot.reset()
        self.say("(conversation cleared)")
        return True

    def cmd_system(self, arg: str) -> bool:
        for bot in self.bots:
            bot.system = arg.strip() or None
            if bot.system and not bot.has_system_slot:
                self.say(f"({bot.name} has no chat template: its plain prompt format has no place for a system message)")
        self.say(f"(system message {'set' if arg.strip() else 'cleared'})")
        return True

    def cmd_lang(self, _arg: str) -> bool:
        for bot in self.bots:
            prefix = f"{bot.name}: " if len(self.bots) > 1 else ""
            self.say(prefix + describe_language(bot.last_reply()))
        return True

    def cmd_help(self, _arg: str) -> bool:
        for name, (_, text) in COMMANDS.items():
            self.say(f"  {name:<14} {text}")
        self.say("  Ctrl-C         stop a reply    Ctrl-D  leave")
        return True

    def cmd_exit(self, _arg: str) -> bool:
        return False

    def handle(self, line: str) -> bool:
        """Run one input line; False when the session should end."""
        if line.startswith("/"):
            name, _, arg = line.partition(" ")
            if name not in COMMANDS:
                self.say(f"(unknown command {name}; /help lists them)")
                return True
            return COMMANDS[name][0](self, arg)
        if line.strip():
            self.ask(line)
        return True

    def repl(self, read: Callable[[str], str] = input) -> None:
        _take_back_ctrl_c()
        names = " vs ".join(bot.name for bot in self.bots)
        self.say(f"langshift chat: {names}. /help for commands; Ctrl-C stops a reply; Ctrl-D or /exit leaves.")
        while True:
            try:
                line = read(self.PROMPT)
            except KeyboardInterrupt:  # at the prompt: a fresh line, as a shell does
                self.say()
                continue
            except EOFError:
                self.say()
                return
            try:
                keep_going = self.handle(line)
            except KeyboardInterrupt:  # Ctrl-C before the reply's first token (while the prompt is built)
                self.say(" [stopped]")
                keep_going = True
            if not keep_going:
                return


def _take_back_ctrl_c() -> None:
    """Ctrl-C stops a reply only if SIGINT reaches Python: a process started with it ignored (a background
    job of a non-interactive shell, a test runner's worker) or blocked passes that on to its children, and
    Python then keeps it ignored. The REPL is interactive by definition, so it takes the signal back."""
    if threading.current_thread() is threading.main_thread():
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        signal.signal(signal.SIGINT, signal.default_int_handler)


COMMANDS: dict[str, tuple[Callable[[Session, str], bool], str]] = {
    "/reset": (Session.cmd_reset, "forget the conversation"),
    "/system": (Session.cmd_system, "TEXT: set the system message (empty: clear it)"),
    "/lang": (Session.cmd_lang, "language of the last reply (the fidelity detector)"),
    "/help": (Session.cmd_help, "this list"),
    "/exit": (Session.cmd_exit, "leave"),
    "/quit": (Session.cmd_exit, "leave"),
}


def load_bot(model: str, *, gguf_file: str | None = None, system: str | None = None, name: str | None = None,
             dtype: str | None = None) -> Bot:
    """A `Bot` for any model langshift can load: hub id, directory, `.gguf`, `smollm2`, a training
    output, a LoRA adapter directory."""
    from pathlib import Path

    from langshift import models

    m, tok = models.load(model, gguf_file, dtype=dtype)
    path = Path(str(model))
    default = f"{path.parent.name} (LoRA merged)" if models.is_adapter_dir(path) else path.name or str(model)
    return Bot(name or default, m, tok, system)
