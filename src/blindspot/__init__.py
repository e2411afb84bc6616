"""blindspot: diagnose visual ignorance in vision-language models."""

__version__ = "0.1.0"
