"""The outside world: the upstream index, git, advisories, sdists."""
