"""The alert lifecycle: open -> acknowledged -> resolved, with suppression and notification."""
