"""`python -m gru_sentiment` runs the command-line interface (and works under torchrun)."""

from gru_sentiment.cli import main

if __name__ == "__main__":
    main()
