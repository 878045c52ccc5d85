"""The `make demo` walk-through on the bundled NYC flights data (see `shipyard.demo.flights`)."""
