"""Search at inference (best-of-N, particle filtering, entropic particle filtering) guided by
process rewards that the project writes. See particle_filter.py, resampling.py, process_reward.py."""
from .particle_filter import SEARCH_METHODS, SearchConfig, SearchResult, make_search_config, run_search
from .process_reward import PROCESS_REWARDS, countdown_steps_credit, overconfident, process_reward_for

__all__ = ["PROCESS_REWARDS", "SEARCH_METHODS", "SearchConfig", "SearchResult", "countdown_steps_credit",
           "make_search_config", "overconfident", "process_reward_for", "run_search"]
