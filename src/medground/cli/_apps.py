"""The typer applications every command module registers on, and the command class of
the commands that take a config.

Each command group lives in its own module (``cli/<group>.py``) and only parses
arguments, calls the library and prints; no logic lives in the CLI.  A command built
with :func:`config_command` passes every option it does not declare to
:func:`medground.config.load_config` as an override, and its ``--help`` lists the
config's fields (help, type and default read from the dataclass).

A command's first docstring paragraph is its one-line summary in ``medground --help``
(keep it on one line).  A boolean flag (``--quiet``) takes no value, so its help shows
no ``<bool>`` type beside it (typer's plain help already does so).
"""

from __future__ import annotations

import typer
from typer.core import TyperCommand, TyperOption

from ..registry import Entry


def _flag_type(self, ctx) -> str | None:
    """The type shown beside an option in the rich help: none for a flag (it takes no value)."""
    if self.is_flag and not self.count:
        return None
    return _option_type(self, ctx)


_option_type = TyperOption.display_type_rich
TyperOption.display_type_rich = _flag_type

_SETTINGS = dict(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False, rich_markup_mode="markdown")

#: context settings of a command whose unknown options are config overrides
OVERRIDES = {"allow_extra_args": True, "ignore_unknown_options": True}

app = typer.Typer(help="Ground clinical language in medical images: train, evaluate, serve.", **_SETTINGS)
data_app = typer.Typer(help="Datasets: validate, convert, generate phantoms, statistics.", **_SETTINGS)
model_app = typer.Typer(help="Models: tiny offline checkpoints, model families.", **_SETTINGS)
train_app = typer.Typer(help="Training on TRL: SFT warm start and GRPO.", **_SETTINGS)
rewards_app = typer.Typer(help="Reward functions for GRPO.", **_SETTINGS)
semantic_app = typer.Typer(help="Semantic image-text encoders for the semantic reward.", **_SETTINGS)

app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")
app.add_typer(train_app, name="train")
app.add_typer(rewards_app, name="rewards")
app.add_typer(semantic_app, name="semantic")


def config_command(config: str, *, defaults: str | None = None, title: str = "Config fields",
                   dashes: bool = False) -> type[TyperCommand]:
    """A typer command class whose ``--help`` ends with the fields of the config class
    ``config`` (``"module:Class"``, imported only for the help), one panel per section.
    ``defaults`` names a function whose result shows the defaults instead (e.g. the
    packaged recipe); ``dashes`` shows ``--batch-size`` for ``--batch_size`` (both work)."""

    class ConfigCommand(TyperCommand):
        def format_help(self, ctx, formatter) -> None:
            from ..config import describe, section_titles

            super().format_help(ctx, formatter)
            cls = Entry("config", config).load()
            docs = describe(cls, Entry("defaults", defaults).load()() if defaults else None)
            titles = section_titles(cls)
            panels: dict[str, list] = {}
            for d in docs:
                head = f"{title}: {d.section}" if d.section else title
                if titles.get(d.section) and d.section:
                    head += f" ({titles[d.section]})"
                flags = [f.replace("_", "-") for f in d.flags] if dashes else d.flags
                panels.setdefault(head, []).append((", ".join(flags), d))
            if self.rich_markup_mode is not None and _print_rich(panels):
                return
            for head, rows in panels.items():
                with formatter.section(head):
                    formatter.write_dl([(f"{flags} {d.type.upper()}", _help_text(d)) for flags, d in rows])

    return ConfigCommand


def _help_text(d) -> str:
    return d.help + (f" [default: {d.default}]" if d.default is not None else "")


def _print_rich(panels) -> bool:
    """Print the field panels the way typer prints its options; False without rich."""
    try:
        from rich.console import Console
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text
    except ImportError:  # pragma: no cover - typer installs rich
        return False
    console = Console()
    for head, rows in panels.items():
        table = Table(show_header=False, box=None, expand=True, padding=(0, 1), pad_edge=False)
        table.add_column(no_wrap=True, style="bold cyan")
        table.add_column(no_wrap=True, style="yellow")
        table.add_column(ratio=1)
        for flags, d in rows:
            help_ = Text(d.help)
            if d.default is not None:
                help_.append(f" [default: {d.default}]", style="dim")
            table.add_row(Text(flags), Text(d.type), help_)
        console.print(Panel(table, title=head, title_align="left", border_style="dim"))
    return True
