"""The shared `__main__` of the recipes: parse with TrlParser, run, and turn bad input into one line.

    if __name__ == "__main__":
        run_recipe(main, GRPORecipeArguments, GRPOConfig, ModelConfig)

A malformed config (unknown key, bad value, failed cross-field check in `__post_init__`) or a
trainer input error (`TrainerConfigError`: unknown task, missing model, broken dataset line) is
printed as `error: <what is wrong and the fix>` on stderr with exit code 2, instead of a traceback.
"""

from __future__ import annotations

import sys


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def run_recipe(main, *dataclass_types, argv: list[str] | None = None) -> None:
    """Parse `argv` (default sys.argv) into `dataclass_types` with TrlParser (YAML via --config) and call `main`."""
    import yaml
    from trl import TrlParser

    from trainer.errors import TrainerConfigError

    try:
        configs = TrlParser(dataclass_types).parse_args_and_config(args=argv)
    except (ValueError, yaml.YAMLError, FileNotFoundError) as exc:
        fail(" ".join(str(exc).split()))
    try:
        main(*configs)
    except TrainerConfigError as exc:
        fail(str(exc))
