"""`python -m shipyard` runs the CLI."""

from shipyard.cli.app import main

if __name__ == "__main__":  # not when a spawned child (the retrain loop) imports it
    main()
