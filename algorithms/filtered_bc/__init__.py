"""Online filtered behaviour cloning (``algorithm=filtered_bc``)."""

from .config import FilteredBCConfig
from .learner import FilteredBC, top_episodes

__all__ = ["FilteredBC", "FilteredBCConfig", "top_episodes"]
