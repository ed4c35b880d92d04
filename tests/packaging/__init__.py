"""Checks of what an install of the project holds: the client without the server's packages."""
