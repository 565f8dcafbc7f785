"""kgalign: multi-modal entity alignment between knowledge graphs."""

__version__ = "0.1.0"
