"""Development tools run by make lint; not part of the installed package."""
