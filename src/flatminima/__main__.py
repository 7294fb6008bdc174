"""``python -m flatminima``: the command line (see ``flatminima --help``)."""

from .cli import main

if __name__ == "__main__":
    main()
