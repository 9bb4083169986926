"""evaluation."""

__all__ = []
