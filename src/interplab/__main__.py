"""`python -m interplab` is the same as the `interplab` command."""

from interplab.cli import main

if __name__ == "__main__":
    main()
