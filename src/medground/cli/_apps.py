"""The typer applications every command module registers on.

Each command group lives in its own module (``cli/<group>.py``) and only parses
arguments, calls the library and prints; no logic lives in the CLI.
"""

import typer

_SETTINGS = dict(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)

app = typer.Typer(help="Ground clinical language in medical images: train, evaluate, serve.", **_SETTINGS)
data_app = typer.Typer(help="Datasets: validate, convert, generate phantoms, statistics.", **_SETTINGS)
model_app = typer.Typer(help="Models: build tiny offline checkpoints.", **_SETTINGS)
train_app = typer.Typer(help="Training on TRL: SFT warm start and GRPO.", **_SETTINGS)
rewards_app = typer.Typer(help="Reward functions for GRPO.", **_SETTINGS)
semantic_app = typer.Typer(help="Semantic image-text encoders for the semantic reward.", **_SETTINGS)

app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")
app.add_typer(train_app, name="train")
app.add_typer(rewards_app, name="rewards")
app.add_typer(semantic_app, name="semantic")
