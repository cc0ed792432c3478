"""`python -m gateway` is the same as the `optout` command."""

from gateway.cli import main

if __name__ == "__main__":
    main()
