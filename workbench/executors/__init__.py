"""Executors: where a unit of runs trains (this process, a child process, a Ray cluster), all
recorded in this process by the same recorder."""
