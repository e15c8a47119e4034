"""What the dashboards' pages show, computed without a web framework: ``health`` (data
health facts), ``tearstats`` (tear-sheet relative statistics), ``whatif`` (what-if
reruns on the Dask cluster)."""

__all__ = ["health", "tearstats", "whatif"]
