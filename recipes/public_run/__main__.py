"""`python -m recipes.public_run [--config ...]`: the whole public run (see the package docstring)."""

from recipes.public_run import main

main()
