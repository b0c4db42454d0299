"""GEM: a LLaVA-style multimodal LLM that reads an ECG (signal, optionally its paper image).

Towers turn the inputs into soft tokens; a shared ``mlp2x_gelu`` projector maps them into the
language model's embedding space, where they replace the ``<ecg>`` / ``<image>`` placeholders
of the chat prompt:

- **signal tower**: train-clip's ECG encoder (frozen by default) over the per-lead z-scored
  record → ``ecg_tokens`` tokens for the whole record;
- **lead tower**: a small shared 1-D CNN over each lead alone plus the lead's amplitude
  statistics → one token per lead. In the prompt each lead token follows its name
  (``" V1:" <token>``), so a question about a lead can find that lead's token;
- **image tower** (optional): a small CNN over the rendered paper ECG, pooled to a grid of
  ``image_grid²`` tokens.

The language model (:mod:`ecgflow.models.language_model`) is adapted with LoRA (``peft``);
its own weights stay frozen. Sequences are left-padded so every answer ends at the last
position: the LM head then only runs over the answer tokens.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from ecgflow.models.configs import GemConfig
from ecgflow.models.encoders import build_encoder
from ecgflow.models.gem_calibration import Calibration, decide

ECG_TOKEN = "<ecg>"
IMAGE_TOKEN = "<image>"
_PLACEHOLDER = re.compile(f"({re.escape(ECG_TOKEN)}|{re.escape(IMAGE_TOKEN)})")


def _zscore(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=-1, keepdim=True)
    std = x.std(dim=-1, keepdim=True)
    return (x - mean) / (std + 1e-6)


class SignalTower(nn.Module):
    """The CLIP ECG encoder over the z-scored record → ``[B, ecg_tokens, tower_width]``."""

    def __init__(self, config: GemConfig) -> None:
        super().__init__()
        self.encoder = build_encoder(config.encoder)
        self.frozen = not config.train_encoder
        if self.frozen:
            self.encoder.requires_grad_(False)
        self.tokens = config.ecg_tokens
        self.to_tokens = nn.Linear(self.encoder.out_dim, config.ecg_tokens * config.tower_width)

    def train(self, mode: bool = True) -> SignalTower:
        """Like ``nn.Module.train``, but a frozen encoder stays in eval mode (BN statistics)."""
        super().train(mode)
        if self.frozen:
            self.encoder.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, T]`` signals → ``[B, ecg_tokens, tower_width]``."""
        features = self.encoder(_zscore(x))
        return self.to_tokens(features).view(x.shape[0], self.tokens, -1)


class LeadTower(nn.Module):
    """One token per lead: a shared 1-D CNN over each lead alone, its statistics, a lead embedding.

    The statistics (log of the standard deviation, of the first difference's standard deviation,
    of the slow component's range) keep the amplitude information that z-scoring removes —
    what noise and baseline-drift questions are about.
    """

    def __init__(self, config: GemConfig) -> None:
        super().__init__()
        width = config.lead_width
        layers: list[nn.Module] = []
        c_in = 1
        for c_out in (width // 2, width, width, width):
            layers += [
                nn.Conv1d(c_in, c_out, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm1d(c_out),
                nn.ReLU(inplace=True),
            ]
            c_in = c_out
        self.cnn = nn.Sequential(*layers)
        self.out = nn.Linear(2 * width + 3, config.tower_width)
        embedding = torch.randn(len(config.leads), config.tower_width) * 0.02
        self.lead_embedding = nn.Parameter(embedding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, L, T]`` signals → ``[B, L, tower_width]``."""
        batch, leads, length = x.shape
        flat = x.reshape(batch * leads, 1, length)
        h = self.cnn(_zscore(flat))
        pooled = torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=1)
        slow = functional.avg_pool1d(flat, kernel_size=max(length // 20, 1))
        stats = torch.log(
            torch.cat(
                [
                    flat.std(dim=-1),
                    flat.diff(dim=-1).std(dim=-1),
                    slow.amax(dim=-1) - slow.amin(dim=-1),
                ],
                dim=1,
            )
            + 1e-3
        )
        tokens = self.out(torch.cat([pooled, stats], dim=1)).view(batch, leads, -1)
        return tokens + self.lead_embedding


class ImageTower(nn.Module):
    """A small CNN over a grayscale paper ECG ``[B, 1, H, W]`` → ``[B, grid², tower_width]``."""

    def __init__(self, config: GemConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for c_out in (32, 64, 128, config.tower_width):
            layers += [
                nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
            c_in = c_out
        self.cnn = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(config.image_grid))
        grid = config.image_grid**2
        self.position = nn.Parameter(torch.randn(grid, config.tower_width) * 0.02)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] → grid tokens."""
        h = self.cnn(1.0 - images)  # ink is dark: make it the signal
        return h.flatten(2).transpose(1, 2) + self.position


def mlp2x_gelu(in_dim: int, out_dim: int) -> nn.Sequential:
    """LLaVA's projector: Linear → GELU → Linear."""
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))


class GemModel(nn.Module):
    """Towers + projector + a LoRA-adapted causal LM (see the module docstring)."""

    def __init__(self, config: GemConfig, lm: nn.Module, tokenizer: Any) -> None:
        super().__init__()
        from peft import LoraConfig, get_peft_model

        self.config = config
        self.tokenizer = tokenizer
        self.signal_tower = SignalTower(config)
        self.lead_tower = LeadTower(config)
        self.image_tower = ImageTower(config) if config.image else None
        hidden = lm.get_input_embeddings().embedding_dim
        self.projector = mlp2x_gelu(config.tower_width, hidden)
        lm.requires_grad_(False)
        if config.gradient_checkpointing:
            lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=list(config.lora_targets),
            task_type="CAUSAL_LM",
        )
        self.lm = get_peft_model(lm, lora)
        self.eos_id = int(tokenizer.eos_token_id)
        #: closed-set offsets (:mod:`ecgflow.models.gem_calibration`); load_gem sets it
        self.calibration: Calibration | None = None
        #: how its prompts' evidence is measured (ecgflow.models.gem_evidence); None: none
        self.evidence_reader: Any = None
        self.pad_id = int(tokenizer.pad_token_id)
        self._lead_labels = [self._ids(f" {lead}:") for lead in config.leads]

    # --- text ----------------------------------------------------------------------------------

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt(self, question: str) -> str:
        """The chat prompt for ``question``, with the ``<ecg>`` (and ``<image>``) placeholders."""
        if ECG_TOKEN not in question:
            question = f"{ECG_TOKEN}\n{question}"
        if self.config.image and IMAGE_TOKEN not in question:
            question = question.replace(ECG_TOKEN, f"{ECG_TOKEN}{IMAGE_TOKEN}", 1)
        if not self.config.image:
            question = question.replace(IMAGE_TOKEN, "")
        messages = [
            {"role": "system", "content": self.config.system_prompt},
            {"role": "user", "content": question},
        ]
        if getattr(self.tokenizer, "chat_template", None):
            return str(
                self.tokenizer.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=True
                )
            )
        return f"{self.config.system_prompt}\n\nUser: {question}\nAssistant:"

    def answer_ids(self, answer: str) -> list[int]:
        """Token ids of ``answer`` (cut to ``max_answer_tokens``) and the end-of-turn token."""
        return [*self._ids(answer)[: self.config.max_answer_tokens], self.eos_id]

    # --- soft tokens ---------------------------------------------------------------------------

    def encode(
        self, signals: torch.Tensor, images: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Projected record tokens ``[B, k, H]``, lead tokens ``[B, L, H]``, image tokens."""
        record = self.projector(self.signal_tower(signals))
        leads = self.projector(self.lead_tower(signals))
        image = None
        if self.image_tower is not None:
            if images is None:
                raise ValueError("this GEM model reads paper images: pass images")
            image = self.projector(self.image_tower(images))
        return record, leads, image

    def _embed_prompt(
        self,
        prompt: str,
        record: torch.Tensor,
        leads: torch.Tensor,
        image: torch.Tensor | None,
    ) -> torch.Tensor:
        """``[n, H]`` embeddings of one prompt with its soft tokens spliced in."""
        embed = self.lm.get_input_embeddings()
        device = record.device
        parts: list[torch.Tensor] = []
        for piece in _PLACEHOLDER.split(prompt):
            if piece == ECG_TOKEN:
                parts.append(record)
                for i, label in enumerate(self._lead_labels):
                    parts.append(embed(torch.tensor(label, device=device)))
                    parts.append(leads[i : i + 1])
            elif piece == IMAGE_TOKEN:
                if image is not None:
                    parts.append(image)
            elif piece:
                # a long piece keeps its end: the question and the answer header come last
                ids = self._ids(piece)[-self.config.max_prompt_tokens :]
                parts.append(embed(torch.tensor(ids, device=device)))
        return torch.cat([p.to(record.dtype) for p in parts])

    def _left_pad(
        self, rows: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Left-padded embeddings ``[B, N, H]``, attention mask and position ids."""
        width = max(r.shape[0] for r in rows)
        hidden = rows[0].shape[1]
        embeds = rows[0].new_zeros(len(rows), width, hidden)
        mask = torch.zeros(len(rows), width, dtype=torch.long, device=rows[0].device)
        for i, row in enumerate(rows):
            embeds[i, width - row.shape[0] :] = row
            mask[i, width - row.shape[0] :] = 1
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        return embeds, mask, positions

    def _prompt_batch(
        self, signals: torch.Tensor, questions: list[str], images: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each question's prompt with its record's soft tokens, left-padded (see _left_pad)."""
        record, leads, image = self.encode(signals, images)
        prompts = [
            self._embed_prompt(
                self.prompt(q), record[i], leads[i], None if image is None else image[i]
            )
            for i, q in enumerate(questions)
        ]
        return self._left_pad(prompts)

    # --- scoring, training and generation ------------------------------------------------------

    def answer_logprobs(
        self,
        signals: torch.Tensor,
        questions: list[str],
        answers: list[str],
        images: torch.Tensor | None = None,
        rows: list[int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sum and mean log-probability of each answer (and end-of-turn) given its question.

        ``rows[j]`` says which signal/image answers ``j`` belongs to (default: ``j``), so several
        candidate answers can share one encoded record.
        """
        rows = list(range(len(answers))) if rows is None else rows
        record, leads, image = self.encode(signals, images)
        embed = self.lm.get_input_embeddings()
        sequences, targets = [], []
        for j, (question, answer) in enumerate(zip(questions, answers, strict=True)):
            r = rows[j]
            prompt = self._embed_prompt(
                self.prompt(question), record[r], leads[r], None if image is None else image[r]
            )
            ids = torch.tensor(self.answer_ids(answer), device=signals.device)
            sequences.append(torch.cat([prompt, embed(ids).to(prompt.dtype)]))
            targets.append(ids)
        embeds, mask, positions = self._left_pad(sequences)
        keep = max(len(t) for t in targets) + 1
        out = self.lm(
            inputs_embeds=embeds,
            attention_mask=mask,
            position_ids=positions,
            logits_to_keep=keep,
            use_cache=False,
        )
        logprobs = functional.log_softmax(out.logits[:, :-1].float(), dim=-1)  # predicts the next
        total = []
        for j, ids in enumerate(targets):
            picked = logprobs[j, keep - 1 - len(ids) :].gather(1, ids[:, None]).squeeze(1)
            total.append(picked.sum())
        sums = torch.stack(total)
        lengths = torch.tensor([len(t) for t in targets], device=sums.device, dtype=sums.dtype)
        return sums, sums / lengths

    def forward(
        self,
        signals: torch.Tensor,
        questions: list[str],
        answers: list[str],
        images: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The training loss: mean over samples of the per-token answer NLL.

        Per sample, so a long report weighs like a yes/no.
        """
        _, mean = self.answer_logprobs(signals, questions, answers, images)
        return -mean.mean()

    @torch.no_grad()
    def candidate_scores(
        self,
        signals: torch.Tensor,
        questions: list[str],
        candidates: list[list[str]],
        images: torch.Tensor | None = None,
    ) -> list[list[float]]:
        """Per question, each candidate answer's summed log-probability (raw, uncalibrated).

        The prompt (soft tokens, evidence, question: ~250 positions) runs once per question and
        its key/value cache is shared by the candidates (1–6 tokens each), instead of running
        prompt + answer once per candidate — the same sums as :meth:`answer_logprobs` (test),
        at ~1/k of the cost for k candidates.
        """
        embeds, mask, positions = self._prompt_batch(signals, questions, images)
        out = self.lm(
            inputs_embeds=embeds,
            attention_mask=mask,
            position_ids=positions,
            logits_to_keep=1,
            use_cache=True,
        )
        first = functional.log_softmax(out.logits[:, -1].float(), dim=-1)  # the 1st answer token
        owner = [i for i, options in enumerate(candidates) for _ in options]
        answers = [self.answer_ids(option) for options in candidates for option in options]
        if not answers:
            return [[] for _ in candidates]
        index = torch.tensor(owner, device=signals.device)
        cache = out.past_key_values
        cache.batch_select_indices(index)  # each question's cache, once per candidate
        width = max(len(a) for a in answers)
        ids = torch.zeros(len(answers), width, dtype=torch.long, device=signals.device)
        for j, answer in enumerate(answers):
            ids[j, : len(answer)] = torch.tensor(answer, device=signals.device)
        answer_mask = (
            torch.arange(width, device=signals.device)[None]
            < torch.tensor([len(a) for a in answers], device=signals.device)[:, None]
        ).long()
        steps = self.lm(
            inputs_embeds=self.lm.get_input_embeddings()(ids).to(embeds.dtype),
            attention_mask=torch.cat([mask[index], answer_mask], dim=1),
            position_ids=positions[index, -1:] + 1 + torch.arange(width, device=signals.device),
            past_key_values=cache,
            use_cache=True,
        )
        later = functional.log_softmax(steps.logits.float(), dim=-1)  # predicts token t + 1
        values = []
        for j, answer in enumerate(answers):
            total = first[owner[j], answer[0]]
            if len(answer) > 1:
                picked = ids[j, 1 : len(answer)]
                total = total + later[j, : len(answer) - 1].gather(1, picked[:, None]).sum()
            values.append(float(total))
        out_scores, k = [], 0
        for options in candidates:
            out_scores.append(values[k : k + len(options)])
            k += len(options)
        return out_scores

    def offsets(self, question: str, group: tuple[str, str, str] | None = None) -> dict:
        """The calibration's option offsets for a question (its group, else its text)."""
        if self.calibration is None:
            return {}
        if group is not None:
            return self.calibration.offsets_for(group)
        return self.calibration.offsets_for_question(question)

    @torch.no_grad()
    def choose(
        self,
        signals: torch.Tensor,
        questions: list[str],
        candidates: list[list[str]],
        images: torch.Tensor | None = None,
        groups: list[tuple[str, str, str]] | None = None,
        evidence: list[str | None] | None = None,
    ) -> list[str]:
        """Per question, the candidate with the highest calibrated score.

        The score is the summed log-probability plus the offset of the model's calibration
        (``calibration.json``; none: the raw argmax) for the question's group — given in
        ``groups`` (eval), else found from the question's text (serving). ``evidence``: each
        question's evidence lines, read after ``<ecg>`` (the offsets follow the question alone).
        """
        from ecgflow.text.evidence import with_evidence

        prompts = questions
        if evidence is not None:
            prompts = [with_evidence(q, e) for q, e in zip(questions, evidence, strict=True)]
        scores = self.candidate_scores(signals, prompts, candidates, images)
        chosen = []
        for i, (question, options) in enumerate(zip(questions, candidates, strict=True)):
            offsets = self.offsets(question, None if groups is None else groups[i])
            chosen.append(decide(options, scores[i], offsets)[0])
        return chosen

    @torch.no_grad()
    def generate_ids(
        self,
        signals: torch.Tensor,
        questions: list[str],
        images: torch.Tensor | None = None,
        max_new_tokens: int = 64,
        max_time: float | None = None,
        streamer: Any = None,
    ) -> list[list[int]]:
        """Greedy answer token ids per question (with the end-of-turn id when it finished).

        ``max_time`` stops generation after that many seconds; ``streamer`` (a transformers
        streamer) receives the tokens as they come.
        """
        embeds, mask, _ = self._prompt_batch(signals, questions, images)
        out = self.lm.generate(
            inputs_embeds=embeds,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            max_time=max_time,
            do_sample=False,
            eos_token_id=self.eos_id,
            pad_token_id=self.pad_id,
            streamer=streamer,
        )
        rows = []
        for row in out.tolist():
            if self.eos_id in row:
                row = row[: row.index(self.eos_id) + 1]
            rows.append(row)
        return rows

    def generate(
        self,
        signals: torch.Tensor,
        questions: list[str],
        images: torch.Tensor | None = None,
        max_new_tokens: int = 64,
    ) -> list[str]:
        """Greedy answers to ``questions`` (one per signal row), as text."""
        ids = self.generate_ids(signals, questions, images, max_new_tokens)
        return [self.tokenizer.decode(row, skip_special_tokens=True).strip() for row in ids]

    def tower_state(self) -> dict[str, torch.Tensor]:
        """Weights of the towers and the projector (everything but the LM and its adapters)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("lm.")}
