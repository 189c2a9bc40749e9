"""A module that fails while it is imported, as an application bug would."""

raise RuntimeError("the settings file is missing")
