"""The engine: a pure scheduler and a torch runner."""
