"""What pyproject.toml cannot say: the repository's plugins/ folder ships as the package
``workbench_plugins`` (a name the project owns; see workbench/plugins.py). Everything else
is in pyproject.toml."""

from setuptools import find_namespace_packages, setup

setup(packages=[*find_namespace_packages(include=["workbench", "workbench.*"]),
                "workbench_plugins"],
      package_dir={"workbench_plugins": "plugins"})
