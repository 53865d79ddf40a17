"""Warm start: behaviour cloning of a scripted policy with TRL's ``SFTTrainer``.

ArCHer (and the other online algorithms) start from a BC policy, as in the paper. We play
``episodes`` games with an env's scripted policy (``random``, ``good`` or ``mix`` — the
latter acts randomly with probability ``epsilon``, giving a mediocre starting policy that
RL can improve), turn every turn into a ``{"prompt", "completion"}`` row whose prompt is
exactly what the policy sees at rollout time, and fine-tune with completion-only loss.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from agentrl.policy.chat import ToolSpec
from agentrl.progress import Phase, Progress
from agentrl.types import Episode

if TYPE_CHECKING:
    from agentrl.config import TrainConfig
    from agentrl.policy import Policy
    from agentrl.rollouts.backend import LearnerHandle


def scripted_episodes(
    env_id: str,
    env_kwargs: dict[str, Any],
    kind: str,
    episodes: int,
    seed: int,
    epsilon: float = 0.5,
    conversation: bool = False,
) -> list[Episode]:
    """Play ``episodes`` games with a scripted policy (seeds ``seed, seed+1, ...``).

    With ``conversation`` the env is played as a conversation (``env.conversation``): the
    episode's observations are the messages (the players still read the transcript), and
    its turns continue one context, as a rollout's do."""
    from agentrl.envs.scripted import make_scripted, run_scripted_episode
    from agentrl.rollouts.worker import make_env

    env = make_env(env_id, env_kwargs, conversation)
    kw: dict[str, Any] = {"epsilon": epsilon} if kind == "mix" else {}
    if "word_list" in env_kwargs:
        kw["word_list"] = env_kwargs["word_list"]
    policy = make_scripted(env_id, kind, **kw)
    rng = np.random.default_rng(seed)
    out = [run_scripted_episode(env, policy, seed=seed + i, rng=rng) for i in range(episodes)]
    env.close()
    return out


def sft_rows(
    policy: Policy,
    episodes: list[Episode],
    stop: Sequence[str] = ("\n",),
    tools: Sequence[ToolSpec] = (),
) -> list[dict[str, str]]:
    """One ``{"prompt", "completion"}`` row per turn: the prompt is the text of the context
    the policy sees at that turn in a rollout (a fresh ``[system, user=observation]`` for a
    transcript turn, the conversation so far for a continuing one); the completion is the
    action and the first stop string (the chat format's end-of-turn token when ``stop`` is
    empty).

    The prompt is text (TRL's SFTTrainer tokenises prompt and completion); the chat formats
    put token boundaries where the text has special tokens or newlines, so the tokens match
    a rollout's except where a tokenizer merges across them (imitation is unaffected; RL
    trains on the rollout's own ids). ``tools`` are the env's tools (a tool env's rollout
    prompt describes them, and so must the rows').
    """
    from agentrl.policy.chat import Message

    tok = policy.tokenizer
    fmt = policy.chat_format(tools)
    end = stop[0] if stop else str(tok.decode(fmt.end_of_turn_ids))
    rows: list[dict[str, str]] = []
    for ep in episodes:
        text = ""
        for turn in ep.turns:
            message: Message = {"role": turn.role, "content": turn.observation}
            if turn.continues and rows:
                last = rows[-1]["completion"]
                last_ids = list(tok(last, add_special_tokens=False)["input_ids"])
                text = text + last + str(tok.decode(fmt.continuation(last_ids, [message])))
            elif tools:  # the format's first context, tools described as in a rollout
                text = str(tok.decode(fmt.start([message])))
            else:  # exactly the single-turn prompt (bos and special tokens as SFT adds them)
                text = policy.format_prompt(turn.observation)
            rows.append({"prompt": text, "completion": turn.action + end})
    return rows


def sft_warm_start(
    policy: Policy,
    rows: list[dict[str, str]],
    epochs: float,
    lr: float,
    batch_size: int,
    seed: int,
    bf16: bool = False,
    progress: bool = False,
) -> dict[str, float]:
    """Fine-tune ``policy.model`` in place on ``rows`` with TRL's SFTTrainer (completion-only loss).

    With ``progress``, shows the steps done, the elapsed time and an ETA (a warm start of a
    real model takes minutes on a CPU): a progress bar on an interactive console, else a
    ``warm start: step N/M, S s`` line about every tenth of the run (:mod:`agentrl.progress`).

    Runs on ``policy.device``: ``use_cpu`` when it is the CPU, else the Trainer's CUDA device,
    with bf16 mixed precision when ``bf16`` (the learner's ``model.autocast`` on CUDA). The
    model is moved back to ``policy.device`` afterwards (the Trainer picks its own GPU index).
    """
    import datasets
    import torch
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    datasets.disable_progress_bars()

    if not rows:
        raise ValueError("warm start has no data: the scripted policy produced no turns")
    dataset = Dataset.from_list(rows)
    device = torch.device(policy.device)
    on_cuda = device.type == "cuda"
    with tempfile.TemporaryDirectory(prefix="agentrl-sft-") as out, warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", FutureWarning
        )  # transformers' own deprecations inside SFTConfig
        args = SFTConfig(
            output_dir=out,
            num_train_epochs=epochs,
            per_device_train_batch_size=batch_size,
            learning_rate=lr,
            lr_scheduler_type="constant",
            warmup_steps=0,
            bf16=bool(bf16) and on_cuda,
            fp16=False,
            use_cpu=not on_cuda,
            report_to=[],
            save_strategy="no",
            logging_steps=10_000,
            seed=seed,
            data_seed=seed,
            completion_only_loss=True,
            dataloader_num_workers=0,
            disable_tqdm=True,
            max_length=None,
            # TRL turns it on by default; it would stay on after the warm start, making every
            # RL update recompute activations and switching off the KV cache that shared
            # prefixes are scored with (Policy.min_shared_prefix)
            gradient_checkpointing=False,
        )
        trainer = SFTTrainer(
            model=policy.model, args=args, train_dataset=dataset, processing_class=policy.tokenizer
        )
        trainer.remove_callback(PrinterCallback)  # agentrl prints its own summary
        with Progress(enabled=progress).phase("warm start", None, "step", plain_updates=True) as bar:
            trainer.add_callback(_StepProgress(TrainerCallback, bar))
            result = trainer.train()
    policy.model.to(device)
    policy.model.eval()
    return {"warm_start/loss": float(result.training_loss), "warm_start/rows": float(len(rows))}


def warm_start_learner(cfg: TrainConfig, learner: LearnerHandle, progress: bool = False) -> dict[str, float]:
    """A run's warm start (``warm_start.*``): behaviour cloning of the env's scripted
    ``warm_start.policy`` on the learner's policy; returns the metrics logged at iteration 0."""
    from agentrl.rollouts.worker import env_tools, make_env

    ws = cfg.warm_start
    eps = scripted_episodes(
        cfg.env.id,
        cfg.env.kwargs,
        ws.policy,
        ws.episodes,
        seed=cfg.seed + 7919,
        epsilon=ws.epsilon,
        conversation=cfg.env.conversation,
    )
    env = make_env(cfg.env.id, cfg.env.kwargs, cfg.env.conversation)
    tools = env_tools(env)
    env.close()
    rows = learner.sft_rows(eps, list(cfg.env.stop), tools)
    stats = learner.warm_start(rows, ws.epochs, ws.lr, ws.batch_size, cfg.seed, progress=progress)
    stats["warm_start/scripted_success"] = sum(e.success for e in eps) / max(len(eps), 1)
    return stats


def _StepProgress(base: type, bar: Phase) -> Any:
    """A ``TrainerCallback`` (``base``, imported lazily) that sets ``bar``'s total to the
    run's steps and advances it after every step."""

    class StepProgress(base):  # type: ignore[misc, valid-type]
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            bar.set_total(int(state.max_steps))

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            bar.advance()

    return StepProgress()
