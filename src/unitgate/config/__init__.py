"""The config file: the settings model, its tables, its file checks, and the edge values it validates."""
