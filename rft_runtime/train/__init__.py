"""The training Job: SFT or DPO with transformers + PEFT + DeepSpeed, then a servable checkpoint.

Run as `python -m rft_runtime.train --config FILE` under the DeepSpeed launcher (see
`rft_runtime.commands.train_command`). A plain loop around `deepspeed.initialize` rather than
a Trainer, so that resuming, the loss mask and the termination message stay easy to follow.
"""
